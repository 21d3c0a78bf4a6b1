//! Freshness without a `stat` per request. Every directory on the way from the root
//! to a cached file is watched with inotify, and any event in a directory bumps its
//! generation. An entry keeps a [`Stamp`]: the generations of its directories when it
//! was last checked. A hit whose stamp still holds is served after a few atomic
//! loads; one whose stamp moved is checked again with `stat` once, then stamped anew.
//!
//! Events are read by a thread (`hearth-watch`), and also by [`Watch::sync`] before a
//! stamp is trusted. The thread alone is not enough: the kernel queues an event
//! before the write or rename that causes it returns, but the thread may run only
//! after the next request has been answered (on two busy cores, often). `sync` is
//! one non-blocking `read` when nothing is queued, about a third of a `stat`.
//!
//! One inotify instance and one thread serve every root in the
//! process, whatever the number of sites: descriptors and the per-user limit of 128
//! inotify instances are not spent per site. A root's watches are removed when the
//! last `Files` serving it is dropped (after a reload, say).
//!
//! Where inotify is missing, or a watch cannot be added (the per-user limit), entries
//! get no stamp and are checked with `stat` on every hit instead.
//!
//! What inotify does not see, and a stamp therefore cannot catch: writes through
//! another hard link in another directory, writes through a shared `mmap`, and
//! changes on network file systems made by another host. Entries reached through a
//! symbolic link are never stamped, since the file lies in a directory not watched.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::sys::{self, Inotify};

/// What changes a cached file, or a name on the way to it, or a sibling beside it.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// The watch is gone (removed, or its directory deleted or moved away).
const GONE: u32 = libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
/// Directories watched in all; past it, new entries are checked per request.
const MAX_DIRS: usize = 16384;

/// How often something happened in one directory.
#[derive(Debug, Default)]
struct Gen(AtomicU64);

impl Gen {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// The generations of the directories leading to a file, as they were when the file
/// was checked.
#[derive(Debug)]
pub(super) struct Stamp {
    gens: Box<[Arc<Gen>]>,
    sum: u64,
}

fn total(gens: &[Arc<Gen>]) -> u64 {
    // Each generation only grows, so the sum changes whenever one of them does.
    gens.iter()
        .fold(0u64, |s, g| s.wrapping_add(g.0.load(Ordering::Acquire)))
}

impl Stamp {
    /// True while nothing happened in any of the directories since the stamp.
    pub(super) fn fresh(&self) -> bool {
        total(&self.gens) == self.sum
    }
}

#[derive(Debug, Default)]
struct Dirs {
    /// Directory (absolute: a root joined with a path under it) -> watch descriptor.
    by_path: HashMap<PathBuf, i32>,
    /// Watch descriptor -> generation, and the paths that name it.
    by_wd: HashMap<i32, (Arc<Gen>, Vec<PathBuf>)>,
    /// Roots served, with how many `Watch`es serve each.
    roots: HashMap<PathBuf, usize>,
}

impl Dirs {
    fn bump_all(&self) {
        for (g, _) in self.by_wd.values() {
            g.bump();
        }
    }

    /// Drops the path `p` (its root is no longer served); returns its watch when no
    /// other path names it, to be removed from the kernel.
    fn release(&mut self, p: &Path) -> Option<i32> {
        let wd = self.by_path.remove(p)?;
        let (g, paths) = self.by_wd.get_mut(&wd)?;
        paths.retain(|q| q != p);
        if !paths.is_empty() {
            return None;
        }
        g.bump();
        self.by_wd.remove(&wd);
        Some(wd)
    }

    /// Forgets a watch after bumping it, so entries under it are checked and stamped
    /// with a new watch.
    fn forget(&mut self, wd: i32) {
        if let Some((g, paths)) = self.by_wd.remove(&wd) {
            g.bump();
            for p in paths {
                self.by_path.remove(&p);
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    inotify: Inotify,
    /// The thread has failed: no new stamps.
    dead: AtomicBool,
    /// A full watch table has been logged.
    full_logged: AtomicBool,
    /// Held while events are read and applied, so nobody trusts a stamp while
    /// events another reader has taken from the kernel are not applied yet.
    draining: Mutex<()>,
    /// Readers between taking events from the kernel and applying them.
    applying: AtomicUsize,
    dirs: Mutex<Dirs>,
}

impl Inner {
    /// Reads and applies queued events until none are left; false if inotify failed.
    fn drain(&self, buf: &mut [u8]) -> bool {
        let _draining = self.draining.lock();
        self.applying.fetch_add(1, Ordering::SeqCst);
        let _applied = Applied(&self.applying);
        loop {
            match self.inotify.read(buf) {
                Ok(0) => return true,
                Ok(n) => apply(self, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    fail(self, &e);
                    return false;
                }
            }
        }
    }
}

/// Counts a reader out of [`Inner::applying`] however `drain` returns.
struct Applied<'a>(&'a AtomicUsize);

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The watches of one root, in the process's one inotify instance.
#[derive(Debug)]
pub(super) struct Watch {
    root: PathBuf,
    inner: Option<Arc<Inner>>,
}

/// The inotify instance and thread every root shares, started on first use; `None`
/// when inotify is unavailable.
static SHARED: OnceLock<Option<Arc<Inner>>> = OnceLock::new();

impl Watch {
    /// Watches under `root`; without inotify (logged), every hit is checked by `stat`.
    pub(super) fn new(root: &Path) -> Watch {
        let inner = SHARED
            .get_or_init(|| match Self::start() {
                Ok(inner) => Some(inner),
                Err(e) => {
                    log::warn!("inotify unavailable ({e}); checking cached files on every request");
                    None
                }
            })
            .clone();
        if let Some(inner) = &inner {
            *inner
                .dirs
                .lock()
                .roots
                .entry(root.to_path_buf())
                .or_default() += 1;
        }
        Watch {
            root: root.to_path_buf(),
            inner,
        }
    }

    /// No watches: every hit is checked by `stat`.
    #[cfg(test)]
    pub(super) fn disabled(root: &Path) -> Watch {
        Watch {
            root: root.to_path_buf(),
            inner: None,
        }
    }

    fn start() -> io::Result<Arc<Inner>> {
        let inner = Arc::new(Inner {
            inotify: Inotify::new()?,
            dead: AtomicBool::new(false),
            full_logged: AtomicBool::new(false),
            draining: Mutex::default(),
            applying: AtomicUsize::new(0),
            dirs: Mutex::default(),
        });
        let theirs = inner.clone();
        std::thread::Builder::new()
            .name("hearth-watch".into())
            .spawn(move || run(&theirs))?;
        Ok(inner)
    }

    /// Applies the events queued so far; call it before trusting a stamp, so a
    /// change whose write or rename returned before this request was sent is seen.
    pub(super) fn sync(&self) {
        if let Some(inner) = &self.inner {
            // Nothing queued, and no reader holding events it has not applied yet:
            // the stamps are current, and no lock is taken. The queue is looked at
            // first: a reader that emptied it had already counted itself in.
            let queued = inner.inotify.pending().map_or(true, |n| n > 0);
            if !queued && inner.applying.load(Ordering::SeqCst) == 0 {
                return;
            }
            // Room for one event with the longest name; more are read in turns.
            let mut buf = [0u8; 512];
            inner.drain(&mut buf);
        }
    }

    /// A stamp over the directories leading to `rel` (a file path under the root),
    /// watching those not yet watched. Take it before reading the file, so a change
    /// made while it is read moves the stamp. `None`: check by `stat` on every hit.
    pub(super) fn stamp(&self, rel: &str) -> Option<Stamp> {
        let inner = self.inner.as_ref()?;
        if inner.dead.load(Ordering::Acquire) {
            return None;
        }
        let mut dirs = inner.dirs.lock();
        let mut gens = Vec::with_capacity(4);
        // The root, then each directory on the way: "a/b/c" -> "", "a", "a/b".
        let ends = std::iter::once(0).chain(rel.match_indices('/').map(|(i, _)| i));
        for at in ends {
            gens.push(self.watched(inner, &mut dirs, &rel[..at])?);
        }
        let sum = total(&gens);
        Some(Stamp {
            gens: gens.into(),
            sum,
        })
    }

    /// The generation of `dir`, adding a watch if it has none.
    fn watched(&self, inner: &Inner, dirs: &mut Dirs, dir: &str) -> Option<Arc<Gen>> {
        let path = if dir.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir)
        };
        if let Some(wd) = dirs.by_path.get(&path) {
            return dirs.by_wd.get(wd).map(|(g, _)| g.clone());
        }
        if dirs.by_path.len() >= MAX_DIRS {
            if !inner.full_logged.swap(true, Ordering::Relaxed) {
                log::warn!("watching {MAX_DIRS} directories; checking other files per request");
            }
            return None;
        }
        let wd = match inner.inotify.add_watch(&path, MASK) {
            Ok(wd) => wd,
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOSPC)
                    && !inner.full_logged.swap(true, Ordering::Relaxed)
                {
                    log::warn!("inotify watch limit reached; checking other files per request");
                } else {
                    log::debug!("inotify watch {dir:?}: {e}");
                }
                return None;
            }
        };
        dirs.by_path.insert(path.clone(), wd);
        // The same directory under two names (a bind mount, nested roots) shares one
        // watch.
        let (g, paths) = dirs.by_wd.entry(wd).or_default();
        paths.push(path);
        Some(g.clone())
    }
}

impl Drop for Watch {
    /// The last `Watch` of a root removes its watches; the thread and the instance
    /// stay for the other roots and the next configuration.
    fn drop(&mut self) {
        let Some(inner) = &self.inner else { return };
        let mut dirs = inner.dirs.lock();
        let last = match dirs.roots.get_mut(&self.root) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => true,
        };
        if last {
            dirs.roots.remove(&self.root);
            // Nested roots: paths under this one that another root serves stay.
            let others: Vec<PathBuf> = dirs.roots.keys().cloned().collect();
            let inside = |p: &Path| others.iter().any(|r| p.starts_with(r));
            let mine: Vec<PathBuf> = dirs
                .by_path
                .keys()
                .filter(|p| p.starts_with(&self.root) && !inside(p))
                .cloned()
                .collect();
            for p in mine {
                if let Some(wd) = dirs.release(&p) {
                    let _ = inner.inotify.rm_watch(wd);
                }
            }
        }
    }
}

/// The watch thread: applies events as they come for the life of the process, so a
/// burst of changes while no request comes (a deploy) does not overflow the
/// kernel's queue.
fn run(inner: &Inner) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !inner.drain(&mut buf) {
            return;
        }
        if let Err(e) = inner.inotify.wait() {
            return fail(inner, &e);
        }
    }
}

fn apply(inner: &Inner, events: &[u8]) {
    let mut dirs = inner.dirs.lock();
    for (wd, mask) in sys::inotify_events(events) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost: anything may have changed.
            dirs.bump_all();
            continue;
        }
        if mask & GONE != 0 {
            if mask & libc::IN_MOVE_SELF != 0 {
                // The directory lives on elsewhere; its old name may now be another.
                let _ = inner.inotify.rm_watch(wd);
            }
            dirs.forget(wd);
        } else if let Some((g, _)) = dirs.by_wd.get(&wd) {
            g.bump();
        }
    }
}

/// Without the thread no stamp can be trusted: every entry is checked once more and
/// from then on per request.
fn fail(inner: &Inner, e: &io::Error) {
    log::error!("inotify: {e}; checking cached files on every request");
    inner.dead.store(true, Ordering::Release);
    inner.dirs.lock().bump_all();
}
