//! A cached file ready to serve: its bytes or descriptor, validators, type, the
//! precompressed siblings served in its place, and what tells whether it is fresh.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::variants::{self, Coding, Variants, CODINGS};
use super::watch::Stamp;
use super::SMALL_FILE;
use crate::format::{http_date, DATE_LEN};
use crate::sys::{self, FileStat};

/// The bytes of a file response.
#[derive(Debug, Clone)]
pub enum Content {
    /// The whole file, read into memory.
    Memory(Arc<[u8]>),
    /// An open file, sent with `sendfile` at explicit offsets.
    Disk(Arc<File>),
}

/// Device, inode, size, mtime and ctime: a rewrite in place changes the size or the
/// times, a replacement (rename over) the inode, and a chmod the ctime.
pub(super) type Identity = (u64, u64, u64, (i64, i64), (i64, i64));

pub(super) fn identity(st: &FileStat) -> Identity {
    (st.dev, st.ino, st.size, st.mtime, st.ctime)
}

/// One representation of a file: the file itself, or a precompressed sibling.
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
    /// Content-Type value (a sibling carries its source's).
    pub content_type: &'static str,
    /// The bytes.
    pub content: Content,
    /// The content coding of a precompressed sibling; `None` for the file itself.
    pub coding: Option<Coding>,
    /// Siblings that may be sent in this file's place.
    pub(super) variants: Variants,
    /// What the file was when read; a cache hit is served only while it still is.
    pub(super) identity: Identity,
    /// The file's path under the root (the index file for a directory), to check.
    pub(super) path: Box<str>,
    /// Trusted without a `stat` while this holds; `None`: checked on every hit.
    pub(super) stamp: Option<Stamp>,
}

impl Entry {
    /// The representation to send for a request's `Accept-Encoding`: the best
    /// precompressed sibling it accepts, or the file itself.
    pub fn select(&self, accept: Option<&str>) -> &Entry {
        let served = [0, 1, 2].map(|i| self.variants.served[i].is_some());
        match variants::choose(accept, served).and_then(|i| self.variants.served[i].as_ref()) {
            Some(sibling) => sibling,
            None => self,
        }
    }

    /// The file's path under the root: the index file for a directory, the file
    /// itself (not a sibling) for a precompressed representation's source.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True if the response depends on `Accept-Encoding` (siblings are served).
    pub fn varies(&self) -> bool {
        self.variants.any()
    }

    /// This entry and its served siblings.
    pub(super) fn all(&self) -> impl Iterator<Item = &Entry> {
        std::iter::once(self).chain(self.variants.served.iter().flatten().map(|e| &**e))
    }

    /// The same entry, checked again and stamped anew.
    pub(super) fn restamped(&self, stamp: Option<Stamp>) -> Entry {
        Entry {
            etag: self.etag.clone(),
            content: self.content.clone(),
            variants: self.variants.clone(),
            path: self.path.clone(),
            stamp,
            ..*self
        }
    }

    /// True while the file and what stands at its siblings' names are still what
    /// they were when the entry was built (one `stat` each).
    pub(super) fn unchanged(&self, root: BorrowedFd<'_>) -> bool {
        let now = sys::stat_at(root, self.path.as_bytes(), true);
        if !now.is_ok_and(|st| identity(&st) == self.identity) {
            return false;
        }
        if !self.variants.looked {
            return true;
        }
        let mut name = String::with_capacity(self.path.len() + 4);
        CODINGS
            .iter()
            .zip(&self.variants.seen)
            .all(|(c, seen)| sibling_identity(root, &mut name, &self.path, *c) == *seen)
    }
}

/// What stands at the name of `path`'s sibling in `coding` (`name` is scratch).
pub(super) fn sibling_identity(
    root: BorrowedFd<'_>,
    name: &mut String,
    path: &str,
    coding: Coding,
) -> Option<Identity> {
    name.clear();
    name.push_str(path);
    name.push_str(coding.suffix());
    sys::stat_at(root, name.as_bytes(), true)
        .ok()
        .map(|st| identity(&st))
}

/// An entity tag from what copies of a file share on every host (modification time
/// to the nanosecond, and size), never the inode; a sibling's tag names its coding,
/// so it never equals its source's.
fn etag(st: &FileStat, coding: Option<Coding>) -> String {
    let mut tag = String::with_capacity(40);
    let (secs, nanos) = (st.mtime.0.max(0), st.mtime.1.max(0));
    let _ = write!(tag, "\"{secs:x}.{nanos:x}-{:x}", st.size);
    if let Some(c) = coding {
        tag.push('-');
        tag.push_str(c.token());
    }
    tag.push('"');
    tag
}

/// Attempts at reading a small file whole while it is being rewritten; between
/// them a pause growing by [`READ_BACKOFF_US`] each time up to a millisecond (about
/// 40 ms in all, spent only on a file that keeps changing), so a writer has time to
/// finish.
const READ_TRIES: u64 = 50;
const READ_BACKOFF_US: u64 = 50;

/// Reads a small file whole, as one consistent version: the bytes read are as many
/// as the file holds, and its size and times did not change while they were read.
/// A file truncated and rewritten meanwhile is read again (a short read is no
/// error). `None`: it grew past [`SMALL_FILE`]. `EAGAIN` after [`READ_TRIES`]
/// reads that each saw it change.
fn read_whole(file: &File, st: &FileStat) -> io::Result<Option<(Vec<u8>, FileStat)>> {
    let mut before = *st;
    for attempt in 0..READ_TRIES {
        if before.size > SMALL_FILE {
            return Ok(None);
        }
        // One byte more than the size shows a file that grew.
        let want = before.size as usize + 1;
        let mut data = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut data[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        data.truncate(got);
        let after = sys::fstat(file.as_fd())?;
        if got as u64 == after.size && identity(&after) == identity(&before) {
            return Ok(Some((data, after)));
        }
        let pause = (attempt * READ_BACKOFF_US).min(1000);
        std::thread::sleep(std::time::Duration::from_micros(pause));
        // Compared with what the file is now, not with what it was before the pause.
        before = sys::fstat(file.as_fd())?;
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Reads `file` (fstat'ed as `st`, at `path`) into an entry, not yet stamped and
/// without siblings. Refuses what is not a readable regular file.
pub(super) fn build(
    file: File,
    st: &FileStat,
    path: &str,
    content_type: &'static str,
    coding: Option<Coding>,
) -> io::Result<Entry> {
    if !st.is_file() {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    // Running as root bypasses permission checks; a file nobody may read is still
    // refused.
    if st.mode & 0o444 == 0 {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    let (content, st) = if st.size <= SMALL_FILE {
        match read_whole(&file, st)? {
            Some((data, now)) => (Content::Memory(data.into()), now),
            // It grew past the in-memory size while being read: sent from disk.
            None => {
                let now = sys::fstat(file.as_fd())?;
                (Content::Disk(Arc::new(file)), now)
            }
        }
    } else {
        (Content::Disk(Arc::new(file)), *st)
    };
    let st = &st;
    let len = st.size;
    let mtime = st.mtime.0.max(0) as u64;
    Ok(Entry {
        len,
        mtime,
        etag: etag(st, coding),
        last_modified: http_date(UNIX_EPOCH + Duration::from_secs(mtime)),
        content_type,
        content,
        coding,
        variants: Variants::default(),
        identity: identity(st),
        path: path.into(),
        stamp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, size: u64, mtime: (i64, i64)) -> FileStat {
        FileStat {
            dev: 1,
            ino,
            size,
            mode: libc::S_IFREG | 0o644,
            nlink: 1,
            mtime,
            ctime: (0, 0),
        }
    }

    #[test]
    fn etags_ignore_the_inode_and_name_the_coding() {
        let a = stat(1, 10, (100, 5));
        let b = stat(2, 10, (100, 5));
        assert_eq!(etag(&a, None), etag(&b, None));
        assert_eq!(etag(&a, None), "\"64.5-a\"");
        assert_ne!(etag(&a, None), etag(&stat(1, 10, (100, 6)), None));
        assert_ne!(etag(&a, None), etag(&stat(1, 11, (100, 5)), None));
        assert_eq!(etag(&a, Some(Coding::Br)), "\"64.5-a-br\"");
    }
}
