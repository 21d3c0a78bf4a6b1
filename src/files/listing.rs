//! Directory listings (autoindex). A listing is read through the descriptor whose
//! path was checked, never by path again, so a directory swapped for a link meanwhile
//! cannot show what lies outside the root. It is bounded in entries, and shared by
//! every request until the directory changes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use percent_encoding::{utf8_percent_encode, AsciiSet};

use super::path::{html_escape, PATH_ESCAPES};
use crate::clock;
use crate::sys::{self, FileStat};

/// Entries shown; the rest are counted in a note.
const MAX_LISTED: usize = 10_000;
/// Names read from one directory, to bound the work of a huge one.
const MAX_SCANNED: usize = 100_000;
/// Listings kept, and their total size.
const CACHED_DIRS: usize = 64;
const CACHED_BYTES: usize = 32 * 1024 * 1024;
/// A cached listing is rebuilt after this long even if the directory did not change,
/// because the sizes it shows change without touching the directory.
const FRESH_MS: u64 = 1000;
/// A directory changed this recently may change again within the same timestamp
/// tick, unseen by its mtime; its listing is not cached.
const SETTLE_NS: i128 = 100_000_000;

/// A colon could make a name like `javascript:x` an absolute URL; escaping it keeps
/// every link relative.
const HREF_ESCAPES: &AsciiSet = &PATH_ESCAPES.add(b':');

type DirId = (u64, u64, (i64, i64), (i64, i64));

fn dir_id(st: &FileStat) -> DirId {
    (st.dev, st.ino, st.mtime, st.ctime)
}

#[derive(Debug)]
struct Cached {
    id: DirId,
    built_ms: u64,
    page: Arc<[u8]>,
}

/// Listings by directory path.
#[derive(Debug, Default)]
pub(super) struct Listings {
    map: Mutex<HashMap<Box<str>, Cached>>,
}

impl Listings {
    /// The listing of `dir` (open, with status `st`), named `rel` under the root.
    pub(super) fn get(&self, rel: &str, dir: &File, st: &FileStat) -> io::Result<Arc<[u8]>> {
        let id = dir_id(st);
        let now = clock::now_ms();
        if let Some(c) = self.map.lock().get(rel) {
            if c.id == id && now.saturating_sub(c.built_ms) < FRESH_MS {
                return Ok(c.page.clone());
            }
        }
        let page: Arc<[u8]> = build(rel, dir)?.into();
        if settled(st) {
            let mut map = self.map.lock();
            let total: usize = map.values().map(|c| c.page.len()).sum();
            if map.len() >= CACHED_DIRS || total + page.len() > CACHED_BYTES {
                map.clear();
            }
            let built_ms = now;
            map.insert(
                rel.into(),
                Cached {
                    id,
                    built_ms,
                    page: page.clone(),
                },
            );
        }
        Ok(page)
    }
}

fn settled(st: &FileStat) -> bool {
    let ns = |(s, n): (i64, i64)| s as i128 * 1_000_000_000 + n as i128;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    now - ns(st.mtime).max(ns(st.ctime)) > SETTLE_NS
}

/// Visible names in `dir` (no dotfiles, UTF-8 only), and whether some were not read.
fn names(dir: &File) -> io::Result<(Vec<String>, bool)> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut names = Vec::new();
    loop {
        let n = sys::getdents(dir.as_fd(), &mut buf)?;
        if n == 0 {
            return Ok((names, false));
        }
        for (name, _) in sys::dirents(&buf[..n]) {
            if name.first() == Some(&b'.') {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                names.push(name.to_owned());
            }
        }
        if names.len() >= MAX_SCANNED {
            return Ok((names, true));
        }
    }
}

/// Generates the HTML listing of `dir`, statting entries relative to it.
fn build(rel: &str, dir: &File) -> io::Result<Vec<u8>> {
    let (mut names, unread) = names(dir)?;
    names.sort_unstable();
    let found = names.len();
    names.truncate(MAX_LISTED);
    let title = html_escape(&format!("/{rel}"));
    let mut page = format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><hr><pre>\n<a href=\"../\">../</a>\n");
    for name in &names {
        // An entry removed since it was read is left out.
        let Ok(st) = sys::stat_at(dir.as_fd(), name.as_bytes(), false) else {
            continue;
        };
        let href = utf8_percent_encode(name, HREF_ESCAPES);
        let shown = html_escape(name);
        if st.is_dir() {
            let _ = writeln!(page, "<a href=\"{href}/\">{shown}/</a>");
        } else {
            let _ = writeln!(page, "<a href=\"{href}\">{shown}</a> {}", st.size);
        }
    }
    if unread || found > names.len() {
        let more = if unread { "more than " } else { "" };
        let _ = writeln!(
            page,
            "\n(listing truncated: {} of {more}{found} entries shown)",
            names.len()
        );
    }
    page.push_str("</pre><hr></body></html>\n");
    Ok(page.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::Files;
    use super::*;

    #[test]
    fn lists_the_directory_that_was_opened() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/inside.txt"), b"in").unwrap();
        std::fs::write(outside.path().join("foreign.txt"), b"out").unwrap();
        let files = Files::new(root.path(), false, true, 8, true).unwrap();
        let (dir, _) = files.open("d/").unwrap();
        let st = sys::fstat(dir.as_fd()).unwrap();
        // Swapped for a link leading out of the root after the checked open.
        std::fs::rename(root.path().join("d"), root.path().join("d.old")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        let page = files.listings.get("d/", &dir, &st).unwrap();
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("inside.txt"), "{page}");
        assert!(!page.contains("foreign.txt"), "{page}");
    }

    #[test]
    fn names_are_escaped_and_links_relative() {
        let root = tempfile::tempdir().unwrap();
        for name in ["javascript:alert(1)", "a\"b<c>", ".hidden", "plain"] {
            std::fs::write(root.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(root.path().join("sub")).unwrap();
        let dir = File::open(root.path()).unwrap();
        let page = String::from_utf8(build("", &dir).unwrap()).unwrap();
        assert!(page.contains("<a href=\"javascript%3Aalert(1)\">javascript:alert(1)</a> 1"));
        assert!(page.contains("<a href=\"a%22b%3Cc%3E\">a&quot;b&lt;c&gt;</a>"));
        assert!(page.contains("<a href=\"sub/\">sub/</a>"));
        assert!(!page.contains("hidden"));
        assert!(!page.contains("truncated"));
    }
}
