//! From a request target to a file under the root: decoding, normalisation, the
//! symlink and dotfile policies, MIME types, a cache of hot files, and listings.

mod cache;
pub mod compress;
mod entry;
mod listing;
mod path;
mod variants;
mod watch;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock;
use crate::http::Status;
use crate::sys::{self, FileStat};
use crate::throttle::Throttle;

use cache::Cache;
use entry::sibling_identity;
pub use entry::{Content, Entry};
use listing::Listings;
pub use path::{content_type, encode_path, html_escape, is_hidden, normalize};
pub use variants::{choose, Coding, CODINGS};
use variants::{StaleLog, Variants};
use watch::{Stamp, Watch};

/// Files up to this size are kept in memory and written with the head in one `writev`.
pub const SMALL_FILE: u64 = 64 * 1024;
/// What a request path resolves to.
#[derive(Debug)]
pub enum Lookup {
    /// A regular file.
    File(Arc<Entry>),
    /// A directory named without its trailing slash.
    Redirect,
    /// A generated directory listing (HTML), shared by concurrent requests.
    Listing(Arc<[u8]>),
    /// Refused or missing.
    Error(Status),
}

/// Lines a second for failures to open or read a file.
static OPEN_ERRORS: Throttle = Throttle::new(5);

/// Maps an `open`/`read` failure to the status the client sees.
pub fn errno_status(e: &io::Error) -> Status {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Status::NotFound,
        Some(libc::EACCES | libc::EPERM | libc::ELOOP | libc::EXDEV | libc::ENXIO) => {
            Status::Forbidden
        }
        // EAGAIN: a small file kept changing while it was read (see entry.rs).
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN) => {
            Status::ServiceUnavailable
        }
        _ => Status::InternalError,
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// True if a component of `p` is hidden (see [`is_hidden`]); works on bytes, so a
/// name that is not UTF-8 is checked too.
fn hidden_path(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    p.components().any(|c| match c {
        Component::Normal(s) => {
            let s = s.as_bytes();
            s.first() == Some(&b'.') && s != b".well-known"
        }
        _ => false,
    })
}

/// The document root, its cache of files and its cache of listings.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    /// The root as configured (a symbolic link, say), to notice when it names
    /// another directory than the one held.
    configured: PathBuf,
    root_dir: OwnedFd,
    /// The root's device and inode.
    root_id: (u64, u64),
    follow_symlinks: bool,
    autoindex: bool,
    precompressed: bool,
    /// Skip siblings older than their file (`--precompressed-check on`).
    precompressed_check: bool,
    /// False once the kernel has said it lacks openat2.
    beneath: AtomicBool,
    cache: Cache,
    listings: Listings,
    watch: Watch,
    stale: StaleLog,
}

impl Files {
    /// Opens the root directory. The cache keeps at most `fd_budget` files open (see
    /// `descriptor_budget`); with `precompressed`, siblings `F.br`/`.zst`/`.gz` of `F` are served.
    pub fn new(
        root: &Path,
        follow_symlinks: bool,
        autoindex: bool,
        fd_budget: usize,
        precompressed: bool,
    ) -> io::Result<Files> {
        let configured = root.to_path_buf();
        let root = root.canonicalize()?;
        let root_dir = sys::open_dir_path(&root)?;
        let st = sys::fstat(root_dir.as_fd())?;
        Ok(Files {
            root_id: (st.dev, st.ino),
            watch: Watch::new(&root),
            configured,
            root,
            root_dir,
            follow_symlinks,
            autoindex,
            precompressed,
            precompressed_check: true,
            beneath: AtomicBool::new(!follow_symlinks),
            cache: Cache::new(fd_budget),
            listings: Listings::default(),
            stale: StaleLog::default(),
        })
    }

    /// With `false`, a sibling is served whatever its modification time
    /// (`--precompressed-check off`); by default one older than its file is skipped.
    pub fn with_precompressed_check(mut self, check: bool) -> Files {
        self.precompressed_check = check;
        self
    }

    /// The root directory's device and inode: what identifies the root to caches
    /// that outlive this value (a reload opens the same root again).
    pub fn root_id(&self) -> (u64, u64) {
        self.root_id
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the configured root path names now, symbolic links followed: device
    /// and inode, or `None` when nothing (a directory or not) stands there.
    pub fn configured_identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.configured).ok()?;
        m.is_dir().then(|| (m.dev(), m.ino()))
    }

    /// Whether the root held open is no longer what the configured path names: it
    /// was deleted, moved away, or a symbolic link on the way now points elsewhere.
    /// A root is held as a descriptor, so a new tree at the old name is otherwise
    /// never seen.
    pub fn root_moved(&self) -> bool {
        let Ok(held) = sys::fstat(self.root_dir.as_fd()) else {
            return true;
        };
        held.nlink == 0 || self.configured_identity() != Some((held.dev, held.ino))
    }

    /// Opens `rel` under the root, then applies the root and dotfile rules to what the
    /// descriptor actually names, symbolic links resolved. The flag says the file is
    /// where its name says (no symbolic link on the way), so watching its directory
    /// sees it change.
    fn open(&self, rel: &str) -> io::Result<(File, bool)> {
        let rel = if rel.is_empty() { "." } else { rel };
        let mut file = None;
        if self.beneath.load(Ordering::Relaxed) {
            match sys::open_at(&self.root_dir, rel.as_bytes(), true) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    log::warn!("openat2 unavailable; checking paths after opening instead");
                    self.beneath.store(false, Ordering::Relaxed);
                }
                other => file = Some(other?),
            }
        }
        let file = match file {
            Some(f) => f,
            None => sys::open_at(&self.root_dir, rel.as_bytes(), false)?,
        };
        let real = match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(p) => p,
            // Without /proc: by path, which a concurrent rename could fool.
            Err(_) => self.root.join(rel).canonicalize()?,
        };
        let direct = real == self.root.join(rel);
        match real.strip_prefix(&self.root) {
            Ok(inside) if hidden_path(inside) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Ok(_) => Ok((file, direct)),
            Err(_) if !self.follow_symlinks => Err(io::Error::from_raw_os_error(libc::EXDEV)),
            // Where a followed link leads is the operator's choice; only the file it
            // names is held to the rule.
            Err(_) if real.file_name().is_some_and(|n| hidden_path(Path::new(n))) => {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            }
            Err(_) => Ok((file, false)),
        }
    }

    /// Resolves a normalised path (see [`normalize`]).
    pub fn lookup(&self, rel: &str) -> Lookup {
        self.lookup_with(rel, self.autoindex)
    }
    /// [`Files::lookup`], listing a directory without an index when `autoindex`.
    pub fn lookup_with(&self, rel: &str, autoindex: bool) -> Lookup {
        if is_hidden(rel) {
            return Lookup::Error(Status::NotFound);
        }
        self.cache.sweep(clock::now_ms());
        if let Some(entry) = self.cache.get(rel) {
            // Nothing happened in its directories since it was checked.
            if entry.stamp.is_some() {
                self.watch.sync();
            }
            if entry.stamp.as_ref().is_some_and(Stamp::fresh) {
                return Lookup::File(entry);
            }
            if let Some(entry) = self.recheck(rel, &entry) {
                return Lookup::File(entry);
            }
            self.cache.remove(rel);
        }
        let dir = rel.is_empty() || rel.ends_with('/');
        let mut result = self.resolve(rel, dir, autoindex);
        if result.as_ref().is_err_and(out_of_descriptors) {
            // Cached files must not keep a request from being served.
            log::warn!("open {rel:?}: out of descriptors; closing cached files");
            self.cache.shed(0);
            result = self.resolve(rel, dir, autoindex);
        }
        match result {
            Ok(l) => {
                if let Lookup::File(entry) = &l {
                    self.cache.insert(rel, entry.clone());
                }
                l
            }
            Err(e) => {
                let status = errno_status(&e);
                let serious = matches!(status, Status::InternalError | Status::ServiceUnavailable);
                if !serious {
                    log::debug!("open {rel:?}: {e}");
                } else if let Some(dropped) = OPEN_ERRORS.allow() {
                    // One line per failure, but not a flood of them.
                    let more = if dropped > 0 {
                        format!(" ({dropped} more like it not logged)")
                    } else {
                        String::new()
                    };
                    let why = match e.raw_os_error() {
                        Some(libc::EAGAIN) => " (the file kept changing while read)",
                        _ if status == Status::ServiceUnavailable => {
                            " (out of descriptors or memory)"
                        }
                        _ => "",
                    };
                    log::error!("open {rel:?}: {e}{why}{more}");
                }
                Lookup::Error(status)
            }
        }
    }

    /// Checks a cached entry not known to be fresh: `Some` (stamped anew if it is
    /// watched) while the file and its siblings are what they were. Only compared,
    /// never served: a hit serves the descriptor or bytes that passed the checks when
    /// the entry was made.
    fn recheck(&self, rel: &str, entry: &Arc<Entry>) -> Option<Arc<Entry>> {
        if entry.stamp.is_none() {
            // Not watched: one check per hit.
            return entry
                .unchanged(self.root_dir.as_fd())
                .then(|| entry.clone());
        }
        // Stamped before the check, so a change made during it moves the new stamp.
        let stamp = self.watch.stamp(&entry.path);
        if !entry.unchanged(self.root_dir.as_fd()) {
            return None;
        }
        let entry = Arc::new(entry.restamped(stamp));
        self.cache.insert(rel, entry.clone());
        Some(entry)
    }

    fn resolve(&self, rel: &str, dir: bool, autoindex: bool) -> io::Result<Lookup> {
        let path = if dir {
            Cow::Owned(format!("{rel}index.html"))
        } else {
            Cow::Borrowed(rel)
        };
        // Before opening, so a change made while the file is read moves the stamp.
        let stamp = self.watch.stamp(&path);
        let (file, direct) = self.open(rel)?;
        let st = sys::fstat(file.as_fd())?;
        if st.is_dir() {
            if !dir {
                return Ok(Lookup::Redirect);
            }
            return match self.open(&path) {
                Ok((f, direct)) => {
                    let ist = sys::fstat(f.as_fd())?;
                    let stamp = stamp.filter(|_| direct);
                    self.entry(f, &ist, &path, stamp).map(Lookup::File)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if autoindex {
                        Ok(Lookup::Listing(self.listings.get(rel, &file, &st)?))
                    } else {
                        Ok(Lookup::Error(Status::Forbidden))
                    }
                }
                Err(e) => Err(e),
            };
        }
        if dir {
            // "file/" names no directory.
            return Ok(Lookup::Error(Status::NotFound));
        }
        let stamp = stamp.filter(|_| direct);
        self.entry(file, &st, rel, stamp).map(Lookup::File)
    }

    fn entry(
        &self,
        file: File,
        st: &FileStat,
        path: &str,
        mut stamp: Option<Stamp>,
    ) -> io::Result<Arc<Entry>> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let ctype = content_type(name);
        let mut entry = entry::build(file, st, path, ctype, None)?;
        if self.precompressed && !variants::is_compressed(name) {
            let (found, direct) = self.siblings(path, st, ctype);
            entry.variants = found;
            stamp = stamp.filter(|_| direct);
        }
        entry.stamp = stamp;
        Ok(Arc::new(entry))
    }

    /// Looks for the precompressed siblings of the file at `path` (whose status is
    /// `src`). The flag says none was reached through a symbolic link.
    fn siblings(&self, path: &str, src: &FileStat, ctype: &'static str) -> (Variants, bool) {
        let mut found = Variants {
            looked: true,
            ..Variants::default()
        };
        let mut direct = true;
        let mut name = String::with_capacity(path.len() + 4);
        for (i, &coding) in CODINGS.iter().enumerate() {
            found.seen[i] = sibling_identity(self.root_dir.as_fd(), &mut name, path, coding);
            if found.seen[i].is_none() {
                continue;
            }
            match self.sibling(&name, src, ctype, coding) {
                Ok(Some((e, d))) => {
                    found.served[i] = Some(Arc::new(e));
                    direct &= d;
                }
                Ok(None) => {}
                Err(e) => log::debug!("sibling {name:?}: {e}"),
            }
        }
        (found, direct)
    }

    /// A sibling `name` in `coding` of a file with status `src`, unless it is older.
    fn sibling(
        &self,
        name: &str,
        src: &FileStat,
        ctype: &'static str,
        coding: Coding,
    ) -> io::Result<Option<(Entry, bool)>> {
        let (file, direct) = self.open(name)?;
        let st = sys::fstat(file.as_fd())?;
        if self.precompressed_check && stale(&st, src) {
            // A build artifact left from an older version of the file.
            self.stale.report(name, st.mtime);
            return Ok(None);
        }
        let e = entry::build(file, &st, name, ctype, Some(coding))?;
        Ok(Some((e, direct)))
    }
}

/// Whether a sibling with status `sibling` is older than its file's `src`, in whole
/// seconds: `brotli -k` and `gzip -k` copy the modification time without its
/// nanoseconds, so a finer comparison would call every such output stale.
fn stale(sibling: &FileStat, src: &FileStat) -> bool {
    sibling.mtime.0 < src.mtime.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_stale_by_whole_seconds() {
        let at = |secs, nanos| FileStat {
            dev: 1,
            ino: 1,
            size: 1,
            mode: libc::S_IFREG | 0o644,
            nlink: 1,
            mtime: (secs, nanos),
            ctime: (0, 0),
        };
        assert!(!stale(&at(100, 0), &at(100, 999_999_999)));
        assert!(!stale(&at(101, 0), &at(100, 5)));
        assert!(stale(&at(99, 999_999_999), &at(100, 0)));
    }

    fn file(e: &Lookup) -> &Entry {
        match e {
            Lookup::File(e) => e,
            other => panic!("not a file: {other:?}"),
        }
    }

    #[test]
    fn open_files_stay_within_the_budget() {
        let root = tempfile::tempdir().unwrap();
        let big = vec![0u8; SMALL_FILE as usize + 1];
        for i in 0..40 {
            std::fs::write(root.path().join(format!("{i}.bin")), &big).unwrap();
        }
        let files = Files::new(root.path(), false, false, 10, true).unwrap();
        for i in 0..40 {
            let l = files.lookup(&format!("{i}.bin"));
            assert!(matches!(file(&l).content, Content::Disk(_)));
            assert!(files.cache.open_files() <= 10);
        }
        let none = Files::new(root.path(), false, false, 0, true).unwrap();
        let _ = none.lookup("1.bin");
        assert_eq!(none.cache.open_files(), 0);
    }

    fn body(l: &Lookup) -> Vec<u8> {
        match &file(l).content {
            Content::Memory(m) => m.to_vec(),
            Content::Disk(_) => panic!("small files are in memory"),
        }
    }

    #[test]
    fn unwatched_entries_are_checked_on_every_hit() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.txt"), b"one").unwrap();
        let mut files = Files::new(root.path(), false, false, 8, true).unwrap();
        files.watch = Watch::disabled(root.path());
        assert_eq!(body(&files.lookup("a.txt")), b"one");
        assert!(file(&files.lookup("a.txt")).stamp.is_none());
        std::fs::write(root.path().join("a.txt"), b"three").unwrap();
        assert_eq!(body(&files.lookup("a.txt")), b"three");
        assert!(!file(&files.lookup("a.txt")).varies());
        std::fs::write(root.path().join("a.txt.gz"), b"gz").unwrap();
        let l = files.lookup("a.txt");
        assert!(file(&l).varies());
        assert_eq!(file(&l).select(Some("gzip")).coding, Some(Coding::Gzip));
    }

    #[test]
    fn watched_entries_are_stamped_until_their_directory_changes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(root.path().join("a/b/c.txt"), b"one").unwrap();
        let files = Files::new(root.path(), false, false, 8, false).unwrap();
        let l = files.lookup("a/b/c.txt");
        let stamp = file(&l).stamp.as_ref().expect("watched");
        assert!(stamp.fresh());
        // A change on the way to the file counts too.
        std::fs::write(root.path().join("a/other"), b"x").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stamp.fresh() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!stamp.fresh());
        // Checked once, found unchanged, and stamped anew.
        let again = files.lookup("a/b/c.txt");
        assert_eq!(body(&again), b"one");
        assert!(file(&again).stamp.as_ref().is_some_and(Stamp::fresh));
    }
}
