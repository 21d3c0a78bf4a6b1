//! From a request target to a file under the root: decoding, normalisation, the
//! symlink and dotfile policies, MIME types, a cache of hot files, and listings.

mod cache;
mod listing;
mod path;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock;
use crate::http::response::{http_date, DATE_LEN};
use crate::http::Status;
use crate::sys::{self, FileStat};

use cache::Cache;
use listing::Listings;
pub use path::{content_type, encode_path, html_escape, is_hidden, normalize};

/// Files up to this size are kept in memory and written with the head in one `writev`.
pub const SMALL_FILE: u64 = 64 * 1024;
/// Descriptors of the server's own (listener, epoll, eventfd, signalfd, logs, root).
const OWN_FDS: u64 = 16;
/// The most files the cache keeps open, whatever the limit.
const MAX_CACHED_FDS: u64 = 1024;

/// How many open files the cache may keep, given the descriptor limit: connections
/// come first, then one file in flight per worker and the server's own descriptors;
/// the cache gets half of what is left (the other half covers files still being sent
/// after their entry was evicted).
pub fn descriptor_budget(nofile: u64, max_conns: usize, workers: usize) -> usize {
    let room = nofile.saturating_sub(max_conns as u64 + workers as u64 + OWN_FDS);
    (room / 2).min(MAX_CACHED_FDS) as usize
}

/// The bytes of a file response.
#[derive(Debug)]
pub enum Content {
    /// The whole file, read into memory.
    Memory(Arc<[u8]>),
    /// An open file, sent with `sendfile` at explicit offsets.
    Disk(Arc<File>),
}

/// A file ready to serve.
#[derive(Debug)]
pub struct Entry {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Strong entity tag, quotes included.
    pub etag: String,
    /// Last-Modified value.
    pub last_modified: [u8; DATE_LEN],
    /// Content-Type value.
    pub content_type: &'static str,
    /// The bytes.
    pub content: Content,
    /// What the file was when read; a cache hit is served only while it still is.
    identity: Identity,
    /// The file's path under the root (the index file for a directory), to check.
    path: Box<str>,
}

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

/// Device, inode, size, mtime and ctime: a rewrite in place changes the size or the
/// times, a replacement (rename over) the inode, and a chmod the ctime.
type Identity = (u64, u64, u64, (i64, i64), (i64, i64));

fn identity(st: &FileStat) -> Identity {
    (st.dev, st.ino, st.size, st.mtime, st.ctime)
}

/// Maps an `open`/`read` failure to the status the client sees.
pub fn errno_status(e: &io::Error) -> Status {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Status::NotFound,
        Some(libc::EACCES | libc::EPERM | libc::ELOOP | libc::EXDEV | libc::ENXIO) => {
            Status::Forbidden
        }
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
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
    root_dir: OwnedFd,
    follow_symlinks: bool,
    autoindex: bool,
    /// False once the kernel has said it lacks openat2.
    beneath: AtomicBool,
    cache: Cache,
    listings: Listings,
}

impl Files {
    /// Opens the root directory. The cache keeps at most `fd_budget` files open (see
    /// [`descriptor_budget`]).
    pub fn new(
        root: &Path,
        follow_symlinks: bool,
        autoindex: bool,
        fd_budget: usize,
    ) -> io::Result<Files> {
        let root = root.canonicalize()?;
        let root_dir = sys::open_dir_path(&root)?;
        Ok(Files {
            root,
            root_dir,
            follow_symlinks,
            autoindex,
            beneath: AtomicBool::new(!follow_symlinks),
            cache: Cache::new(fd_budget),
            listings: Listings::default(),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens `rel` under the root, then applies the root and dotfile rules to what the
    /// descriptor actually names, symbolic links resolved.
    fn open(&self, rel: &str) -> io::Result<File> {
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
        match real.strip_prefix(&self.root) {
            Ok(inside) if hidden_path(inside) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Ok(_) => Ok(file),
            Err(_) if !self.follow_symlinks => Err(io::Error::from_raw_os_error(libc::EXDEV)),
            // Where a followed link leads is the operator's choice; only the file it
            // names is held to the rule.
            Err(_) if real.file_name().is_some_and(|n| hidden_path(Path::new(n))) => {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            }
            Err(_) => Ok(file),
        }
    }

    /// Resolves a normalised path (see [`normalize`]).
    pub fn lookup(&self, rel: &str) -> Lookup {
        if is_hidden(rel) {
            return Lookup::Error(Status::NotFound);
        }
        self.cache.sweep(clock::now_ms());
        if let Some(entry) = self.cache.get(rel) {
            // One stat per hit: a file rewritten, replaced or deleted is seen by the
            // next request. Only compared, never served: a hit serves the descriptor
            // or bytes that passed the checks when the entry was made.
            let now = sys::stat_at(self.root_dir.as_fd(), entry.path.as_bytes(), true);
            if now.is_ok_and(|st| identity(&st) == entry.identity) {
                return Lookup::File(entry);
            }
            self.cache.remove(rel);
        }
        let dir = rel.is_empty() || rel.ends_with('/');
        let mut result = self.resolve(rel, dir);
        if result.as_ref().is_err_and(out_of_descriptors) {
            // Cached files must not keep a request from being served.
            log::warn!("open {rel:?}: out of descriptors; closing cached files");
            self.cache.shed(0);
            result = self.resolve(rel, dir);
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
                match status {
                    Status::InternalError => log::error!("open {rel:?}: {e}"),
                    Status::ServiceUnavailable => {
                        log::error!("open {rel:?}: {e} (out of descriptors or memory)")
                    }
                    _ => log::debug!("open {rel:?}: {e}"),
                }
                Lookup::Error(status)
            }
        }
    }

    fn resolve(&self, rel: &str, dir: bool) -> io::Result<Lookup> {
        let file = self.open(rel)?;
        let st = sys::fstat(file.as_fd())?;
        if st.is_dir() {
            if !dir {
                return Ok(Lookup::Redirect);
            }
            let index = format!("{rel}index.html");
            return match self.open(&index) {
                Ok(f) => {
                    let ist = sys::fstat(f.as_fd())?;
                    self.entry(f, &ist, &index).map(Lookup::File)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if self.autoindex {
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
        self.entry(file, &st, rel).map(Lookup::File)
    }

    fn entry(&self, mut file: File, st: &FileStat, path: &str) -> io::Result<Arc<Entry>> {
        if !st.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        // Running as root bypasses permission checks; a file nobody may read is still
        // refused.
        if st.mode & 0o444 == 0 {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let len = st.size;
        let content = if len <= SMALL_FILE {
            let mut data = Vec::with_capacity(len as usize);
            (&mut file).take(len).read_to_end(&mut data)?;
            if data.len() as u64 != len {
                return Err(io::Error::from_raw_os_error(libc::EAGAIN));
            }
            Content::Memory(data.into())
        } else {
            Content::Disk(Arc::new(file))
        };
        let mtime = st.mtime.0.max(0) as u64;
        let mut etag = String::with_capacity(40);
        let _ = write!(
            etag,
            "\"{:x}-{:x}-{:x}{:08x}\"",
            st.ino,
            len,
            mtime,
            st.mtime.1.max(0)
        );
        let name = path.rsplit('/').next().unwrap_or(path);
        Ok(Arc::new(Entry {
            len,
            mtime,
            etag,
            last_modified: http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime)),
            content_type: content_type(name),
            content,
            identity: identity(st),
            path: path.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = Files::new(root.path(), false, false, 10).unwrap();
        for i in 0..40 {
            let l = files.lookup(&format!("{i}.bin"));
            assert!(matches!(file(&l).content, Content::Disk(_)));
            assert!(files.cache.open_files() <= 10);
        }
        let none = Files::new(root.path(), false, false, 0).unwrap();
        let _ = none.lookup("1.bin");
        assert_eq!(none.cache.open_files(), 0);
    }

    #[test]
    fn budget_leaves_connections_their_descriptors() {
        assert_eq!(descriptor_budget(400, 334, 2), 24);
        assert_eq!(descriptor_budget(40, 1000, 2), 0);
        assert_eq!(descriptor_budget(1 << 20, 1000, 8), 1024);
    }
}
