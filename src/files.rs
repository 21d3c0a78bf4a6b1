//! From a request target to a file under the root: decoding, normalisation, the
//! symlink and dotfile policies, MIME types, and a cache of hot files.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::clock;
use crate::http::response::{http_date, DATE_LEN};
use crate::http::Status;
use crate::sys;

/// Files up to this size are kept in memory and written with the head in one `writev`.
pub const SMALL_FILE: u64 = 64 * 1024;
/// How long a cached entry is trusted before the file is looked at again.
const FRESH_MS: u64 = 1000;
const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (the cache is a hint, not a store).
const SHARD_ENTRIES: usize = 256;
/// Bytes of small-file content kept per shard.
const SHARD_BYTES: u64 = 4 * 1024 * 1024;

/// Decodes and normalises the path of a request target into `out` (relative to the
/// root, segments joined by `/`, no leading slash, and a trailing slash when the
/// path names a directory: ends in `/`, `/.` or `/..`; the root is the empty string).
///
/// Refused with 400: a path not starting with `/`, malformed or overlong escapes,
/// an encoded `/` (`%2F`), NUL and other control bytes, backslashes in any spelling,
/// bytes that are not UTF-8 once decoded (overlong forms included), and `..` that
/// would climb above the root. Escapes are decoded exactly once.
pub fn normalize(path: &str, scratch: &mut Vec<u8>, out: &mut String) -> Result<(), Status> {
    let bad = Status::BadRequest;
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(bad);
    }
    scratch.clear();
    let mut i = 0;
    while i < raw.len() {
        let mut b = raw[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                raw.get(i + 1).and_then(|&c| hex(c)),
                raw.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(bad);
            };
            b = (hi * 16 + lo) as u8;
            if b == b'/' {
                return Err(bad);
            }
            i += 3;
        } else {
            i += 1;
        }
        if b < 0x20 || b == 0x7f || b == b'\\' {
            return Err(bad);
        }
        scratch.push(b);
    }
    let decoded = std::str::from_utf8(scratch).map_err(|_| bad)?;
    out.clear();
    let mut dir = false;
    for seg in decoded.split('/') {
        dir = false;
        match seg {
            "" => dir = true,
            "." => dir = true,
            ".." => {
                if out.is_empty() {
                    return Err(bad);
                }
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
                dir = true;
            }
            _ => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(seg);
            }
        }
    }
    if dir && !out.is_empty() {
        out.push('/');
    }
    Ok(())
}

/// Characters escaped when a path is written back into a URL or an HTML attribute.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'&')
    .add(b'\'')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Percent-encodes a normalised path for a `Location` header or a link.
pub fn encode_path(path: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(path, PATH_ESCAPES)
}

/// True if a segment of the normalised path is hidden (`.git`, `.env`); `.well-known`
/// stays reachable for ACME and similar protocols.
pub fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|s| s.starts_with('.') && s != ".well-known")
}

/// The Content-Type for a file name.
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) if !ext.contains('/') => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    // Types where the MIME table's answer is outdated or charset matters.
    match ext.as_str() {
        "html" | "htm" => return "text/html; charset=utf-8",
        "css" => return "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => return "text/javascript; charset=utf-8",
        "json" | "map" => return "application/json; charset=utf-8",
        "webmanifest" => return "application/manifest+json; charset=utf-8",
        "txt" | "text" | "log" => return "text/plain; charset=utf-8",
        "md" | "markdown" => return "text/markdown; charset=utf-8",
        "csv" => return "text/csv; charset=utf-8",
        "xml" => return "application/xml; charset=utf-8",
        "svg" | "svgz" => return "image/svg+xml; charset=utf-8",
        "wasm" => return "application/wasm",
        "avif" => return "image/avif",
        "webp" => return "image/webp",
        "woff2" => return "font/woff2",
        "woff" => return "font/woff",
        "ico" => return "image/x-icon",
        _ => {}
    }
    let Some(mime) = mime_guess::from_ext(&ext).first_raw() else {
        return "application/octet-stream";
    };
    if mime.starts_with("text/") {
        // Leaked once per distinct text type: a bounded set from the static table.
        static TEXT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
        let mut known = TEXT.lock();
        let with_charset = format!("{mime}; charset=utf-8");
        if let Some(t) = known.iter().find(|t| **t == with_charset) {
            return t;
        }
        let leaked: &'static str = Box::leak(with_charset.into_boxed_str());
        known.push(leaked);
        return leaked;
    }
    mime
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
    identity: (u64, u64, u64, i64, i64),
    checked_ms: AtomicU64,
}

/// What a request path resolves to.
#[derive(Debug)]
pub enum Lookup {
    /// A regular file.
    File(Arc<Entry>),
    /// A directory named without its trailing slash.
    Redirect,
    /// A generated directory listing (HTML).
    Listing(Vec<u8>),
    /// Refused or missing.
    Error(Status),
}

fn identity(meta: &Metadata) -> (u64, u64, u64, i64, i64) {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
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

type Shard = Mutex<HashMap<Box<str>, Arc<Entry>>>;

/// The document root and its cache.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    root_dir: OwnedFd,
    follow_symlinks: bool,
    autoindex: bool,
    /// False once the kernel has said it lacks openat2.
    beneath: AtomicBool,
    shards: Vec<Shard>,
    shard_bytes: Vec<AtomicU64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Files {
    /// Opens the root directory.
    pub fn new(root: &Path, follow_symlinks: bool, autoindex: bool) -> io::Result<Files> {
        let root = root.canonicalize()?;
        let root_dir = sys::open_dir_path(&root)?;
        Ok(Files {
            root,
            root_dir,
            follow_symlinks,
            autoindex,
            beneath: AtomicBool::new(!follow_symlinks),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_bytes: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open(&self, rel: &str) -> io::Result<File> {
        let rel = if rel.is_empty() { "." } else { rel };
        if self.beneath.load(Ordering::Relaxed) {
            match sys::open_at(&self.root_dir, rel.as_bytes(), true) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    log::warn!("openat2 unavailable; checking paths with realpath instead");
                    self.beneath.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let file = sys::open_at(&self.root_dir, rel.as_bytes(), false)?;
        if !self.follow_symlinks {
            let real = self.root.join(rel).canonicalize()?;
            if !real.starts_with(&self.root) {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
        }
        Ok(file)
    }

    fn shard(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Resolves a normalised path (see [`normalize`]).
    pub fn lookup(&self, rel: &str) -> Lookup {
        let dir = rel.is_empty() || rel.ends_with('/');
        if is_hidden(rel) {
            return Lookup::Error(Status::NotFound);
        }
        let shard = self.shard(rel);
        let now = clock::now_ms();
        let cached = self.shards[shard].lock().get(rel).cloned();
        if let Some(entry) = &cached {
            if now.saturating_sub(entry.checked_ms.load(Ordering::Relaxed)) < FRESH_MS {
                return Lookup::File(entry.clone());
            }
        }
        let result = self.resolve(rel, dir, cached.as_ref());
        match &result {
            Ok(Lookup::File(entry)) => {
                if cached.as_ref().is_some_and(|c| Arc::ptr_eq(c, entry)) {
                    entry.checked_ms.store(now, Ordering::Relaxed);
                } else {
                    self.insert(shard, rel, entry.clone());
                }
            }
            _ => {
                if cached.is_some() {
                    self.shards[shard].lock().remove(rel);
                }
            }
        }
        match result {
            Ok(l) => l,
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

    fn insert(&self, shard: usize, rel: &str, entry: Arc<Entry>) {
        let size = match entry.content {
            Content::Memory(ref m) => m.len() as u64,
            Content::Disk(_) => 0,
        };
        let mut map = self.shards[shard].lock();
        let bytes = &self.shard_bytes[shard];
        if map.len() >= SHARD_ENTRIES || bytes.load(Ordering::Relaxed) + size > SHARD_BYTES {
            map.clear();
            bytes.store(0, Ordering::Relaxed);
        }
        if let Some(old) = map.insert(rel.into(), entry) {
            if let Content::Memory(ref m) = old.content {
                bytes.fetch_sub(
                    (m.len() as u64).min(bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }
        bytes.fetch_add(size, Ordering::Relaxed);
    }

    fn resolve(&self, rel: &str, dir: bool, cached: Option<&Arc<Entry>>) -> io::Result<Lookup> {
        let file = self.open(rel)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            if !dir {
                return Ok(Lookup::Redirect);
            }
            let index = format!("{rel}index.html");
            return match self.open(&index) {
                Ok(f) => {
                    let m = f.metadata()?;
                    self.entry(f, &m, "index.html", cached).map(Lookup::File)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if self.autoindex {
                        Ok(Lookup::Listing(self.listing(rel)?))
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
        self.entry(file, &meta, rel, cached).map(Lookup::File)
    }

    fn entry(
        &self,
        mut file: File,
        meta: &Metadata,
        name: &str,
        cached: Option<&Arc<Entry>>,
    ) -> io::Result<Arc<Entry>> {
        if !meta.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        // Running as root bypasses permission checks; a file nobody may read is still
        // refused.
        if meta.permissions().mode() & 0o444 == 0 {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let id = identity(meta);
        if let Some(c) = cached {
            if c.identity == id {
                return Ok(c.clone());
            }
        }
        let len = meta.len();
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
        let mtime = meta.mtime().max(0) as u64;
        let mut etag = String::with_capacity(40);
        let _ = write!(
            etag,
            "\"{:x}-{:x}-{:x}{:08x}\"",
            meta.ino(),
            len,
            mtime,
            meta.mtime_nsec().max(0)
        );
        Ok(Arc::new(Entry {
            len,
            mtime,
            etag,
            last_modified: http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime)),
            content_type: content_type(name),
            content,
            identity: id,
            checked_ms: AtomicU64::new(clock::now_ms()),
        }))
    }

    fn listing(&self, rel: &str) -> io::Result<Vec<u8>> {
        let dir = self.root.join(rel);
        let mut names: Vec<(String, bool, u64)> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                let meta = e.metadata().ok()?;
                Some((name, meta.is_dir(), meta.len()))
            })
            .collect();
        names.sort();
        let title = html_escape(&format!("/{rel}"));
        let mut page = format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><hr><pre>\n<a href=\"../\">../</a>\n");
        for (name, is_dir, len) in names {
            let slash = if is_dir { "/" } else { "" };
            let href = encode_path(&name);
            let shown = html_escape(&name);
            if is_dir {
                let _ = writeln!(page, "<a href=\"{href}{slash}\">{shown}{slash}</a>");
            } else {
                let _ = writeln!(page, "<a href=\"{href}\">{shown}</a> {len}");
            }
        }
        page.push_str("</pre><hr></body></html>\n");
        Ok(page.into_bytes())
    }
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, Status> {
        let (mut s, mut o) = (Vec::new(), String::new());
        normalize(p, &mut s, &mut o).map(|()| o)
    }

    #[test]
    fn normalisation() {
        let ok = |p: &str, want: &str| assert_eq!(norm(p), Ok(want.to_string()), "{p}");
        ok("/", "");
        ok("/index.html", "index.html");
        ok("/a/b/", "a/b/");
        ok("/a//b", "a/b");
        ok("/a/./b", "a/b");
        ok("/a/../b", "b");
        ok("/a/b/..", "a/");
        ok("/a/..", "");
        ok("/a%20b", "a b");
        ok("/%E2%9C%93", "\u{2713}");
        ok("/%252e%252e/x", "%2e%2e/x");
        ok("/a/%2e%2e/b", "b");
        for bad in [
            "",
            "x",
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/",
            "/%2E./x",
            "/..%2fetc",
            "/a%2Fb",
            "/a%00",
            "/a\\..\\b",
            "/%5c..",
            "/%zz",
            "/%4",
            "/%c0%ae%c0%ae/",
            "/%ff",
            "/a%0ab",
        ] {
            assert_eq!(norm(bad), Err(Status::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn hidden_segments() {
        assert!(is_hidden(".git/config"));
        assert!(is_hidden("a/.env"));
        assert!(!is_hidden(".well-known/acme"));
        assert!(!is_hidden("a.b/c"));
    }

    #[test]
    fn mime_types() {
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.wasm"), "application/wasm");
        assert_eq!(content_type("a.pdf"), "application/pdf");
        assert_eq!(content_type("a.mp4"), "video/mp4");
        assert_eq!(content_type("a.jpg"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("a.unknownext"), "application/octet-stream");
    }
}
