//! Compression on the fly: which files a site compresses, the encoders, and a
//! bounded cache of compressed variants shared by every site.
//!
//! A variant is made once and kept, keyed by the root (its device and inode, so the
//! key outlives a reload), the file's path under it and the coding, and served
//! while the file is what it was (device, inode, size, times): the variant of a file
//! changed or replaced is dropped at the file's next request. The cache is least-recently-used by bytes. While
//! one worker compresses a file, other requests for the same variant are answered
//! with the file itself instead of waiting or compressing it again, so a burst for
//! one file compresses it once.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::entry::{Entry, Identity};
use super::variants::Coding;
use super::Content;

/// The largest file compressed on the fly; bigger ones are sent as they are.
pub const MAX_SOURCE: u64 = 32 * 1024 * 1024;

/// gzip level: compressed once and kept, so a higher level than nginx's default 1
/// costs one compression per file, not one per response.
const GZIP_LEVEL: u32 = 6;
/// Brotli quality and largest window: quality 11 is ten times slower for a few
/// percent. The window is cut to the file's size, which saves memory while
/// compressing without changing the output's size.
const BROTLI_QUALITY: u32 = 6;
const BROTLI_WINDOW: u32 = 20;
/// zstd level.
const ZSTD_LEVEL: i32 = 9;

/// The types compressed when `--compress-types` is not given: text and the
/// text-like application types; never images (but SVG), video, audio, archives or
/// anything already compressed.
pub const DEFAULT_TYPES: &str = "text/*,application/javascript,application/json,\
application/xml,application/xhtml+xml,application/rss+xml,application/atom+xml,\
application/manifest+json,application/ld+json,application/wasm,image/svg+xml,\
font/ttf,font/otf,application/vnd.ms-fontobject";

/// What one site compresses on the fly.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `type/subtype` names and `type/*` prefixes, lower case.
    types: Vec<String>,
    /// Files smaller than this are sent as they are.
    min: u64,
}

impl Policy {
    /// A policy for the media types in `types` (`text/*` covers a top-level type)
    /// and files of at least `min` bytes; `None` refuses a malformed type.
    pub fn new(types: &[String], min: u64) -> Result<Policy, String> {
        let mut out = Vec::with_capacity(types.len());
        for t in types.iter().flat_map(|t| t.split(',')) {
            let t = t.trim().to_ascii_lowercase();
            if t.is_empty() {
                continue;
            }
            let valid = t.split_once('/').is_some_and(|(a, b)| {
                let token = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
                };
                token(a) && (b == "*" || token(b))
            });
            if !valid {
                return Err(format!("--compress-types: {t:?} is not a media type"));
            }
            out.push(t);
        }
        Ok(Policy { types: out, min })
    }

    /// Whether `e` (the file itself, not a sibling) is compressed on the fly.
    pub fn applies(&self, e: &Entry) -> bool {
        e.coding.is_none()
            && e.len >= self.min
            && e.len <= MAX_SOURCE
            && !e.path.ends_with(".svgz")
            && self.covers(e.content_type)
    }

    fn covers(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        self.types.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => essence
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
            None => essence.eq_ignore_ascii_case(t),
        })
    }
}

/// Compresses `data` in `coding`.
pub fn encode(coding: Coding, data: &[u8]) -> io::Result<Vec<u8>> {
    match coding {
        Coding::Gzip => {
            let out = Vec::with_capacity(data.len() / 3 + 64);
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            enc.write_all(data)?;
            enc.finish()
        }
        Coding::Br => {
            let mut out = Vec::with_capacity(data.len() / 4 + 64);
            // The smallest window (16 at least) that holds the whole input.
            let mut lgwin = 16;
            while lgwin < BROTLI_WINDOW && (1usize << lgwin) - 16 < data.len() {
                lgwin += 1;
            }
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY as i32,
                lgwin: lgwin as i32,
                size_hint: data.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
            Ok(out)
        }
        Coding::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
    }
}

/// The cache's counters, read once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Responses served from the cache.
    pub hits: u64,
    /// Requests that found no cached variant.
    pub misses: u64,
    /// Variants compressed.
    pub compressions: u64,
    /// Bytes of variants held.
    pub bytes: u64,
    /// Variants held.
    pub entries: u64,
    /// Variants dropped to stay within the size, or because their file changed.
    pub evictions: u64,
}

/// Where a variant is kept: the root (device, inode), a hash of the path under it,
/// and the coding. The slot holds the path itself, so a hash collision is a miss.
type Key = (u64, u64, u64, Coding);

#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    /// The file as it was when compressed.
    identity: Identity,
    /// When last used (a tick of [`Compressor::clock`]), for eviction.
    used: AtomicU64,
}

#[derive(Debug, Default)]
struct Map {
    slots: HashMap<Key, Slot>,
    bytes: u64,
}

/// The cache of compressed variants and its counters.
#[derive(Debug)]
pub struct Compressor {
    map: RwLock<Map>,
    /// Variants being compressed now.
    inflight: Mutex<HashSet<Key>>,
    /// The most bytes of variants kept.
    budget: u64,
    hasher: RandomState,
    clock: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    compressions: AtomicU64,
    evictions: AtomicU64,
}

/// Takes a key out of the in-flight set however the compression ends.
struct Flight<'a> {
    set: &'a Mutex<HashSet<Key>>,
    key: Key,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

impl Compressor {
    /// An empty cache that keeps at most `budget` bytes of variants.
    pub fn new(budget: u64) -> Compressor {
        Compressor {
            map: RwLock::new(Map::default()),
            inflight: Mutex::new(HashSet::new()),
            budget,
            hasher: RandomState::new(),
            clock: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            compressions: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The variant of `e`, a file under the root identified by `root` (device,
    /// inode), in `coding`: from the cache, or compressed now. `None` when another
    /// request is compressing it at this moment, when the file is larger than the
    /// whole cache, or when it cannot be made (the file could not be read): the
    /// file itself is sent instead.
    pub fn get(&self, root: (u64, u64), e: &Entry, coding: Coding) -> Option<Arc<Entry>> {
        if e.len > self.budget {
            // Its variant could not be kept, so every request would compress it.
            return None;
        }
        let key = (root.0, root.1, self.hasher.hash_one(&*e.path), coding);
        let current = |slot: &Slot| slot.identity == e.identity && slot.entry.path == e.path;
        {
            let map = self.map.read();
            if let Some(slot) = map.slots.get(&key) {
                if current(slot) {
                    slot.used.store(self.tick(), Relaxed);
                    self.hits.fetch_add(1, Relaxed);
                    return Some(slot.entry.clone());
                }
            }
        }
        self.misses.fetch_add(1, Relaxed);
        if !self.inflight.lock().insert(key) {
            return None;
        }
        let _flight = Flight {
            set: &self.inflight,
            key,
        };
        // Another request may have finished it between the lookup and the claim.
        if let Some(slot) = self.map.read().slots.get(&key) {
            if current(slot) {
                return Some(slot.entry.clone());
            }
        }
        let encoded = match &e.content {
            Content::Memory(m) => encode(coding, m),
            Content::Disk(f) => read_file(f, e.len).and_then(|data| encode(coding, &data)),
        };
        let bytes = match encoded {
            Ok(b) => b,
            Err(err) => {
                log::warn!("compressing {:?} ({}): {err}", e.path, coding.token());
                return None;
            }
        };
        self.compressions.fetch_add(1, Relaxed);
        let variant = Arc::new(e.encoded(coding, bytes));
        self.insert(key, e.identity, variant.clone());
        Some(variant)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Relaxed)
    }

    /// Keeps `entry`, dropping the least recently used variants to stay within the
    /// budget; one larger than the whole budget is served but not kept.
    fn insert(&self, key: Key, identity: Identity, entry: Arc<Entry>) {
        let size = entry.len;
        let mut map = self.map.write();
        if let Some(old) = map.slots.remove(&key) {
            // The file changed since this variant was made (or, rarely, another path
            // has the same hash).
            map.bytes -= old.entry.len;
            self.evictions.fetch_add(1, Relaxed);
        }
        if size > self.budget {
            return;
        }
        if map.bytes + size > self.budget {
            let mut by_age: Vec<(u64, Key)> = map
                .slots
                .iter()
                .map(|(k, s)| (s.used.load(Relaxed), *k))
                .collect();
            by_age.sort_unstable_by_key(|(used, _)| *used);
            // Down to seven eighths, so the next insertions do not each sort again.
            let target = (self.budget - size).min(self.budget / 8 * 7);
            for (_, k) in by_age {
                if map.bytes <= target {
                    break;
                }
                if let Some(old) = map.slots.remove(&k) {
                    map.bytes -= old.entry.len;
                    self.evictions.fetch_add(1, Relaxed);
                }
            }
        }
        map.bytes += size;
        let used = AtomicU64::new(self.tick());
        map.slots.insert(
            key,
            Slot {
                entry,
                identity,
                used,
            },
        );
    }

    /// The counters and what the cache holds.
    pub fn counts(&self) -> Counts {
        let (bytes, entries) = {
            let map = self.map.read();
            (map.bytes, map.slots.len() as u64)
        };
        Counts {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            compressions: self.compressions.load(Relaxed),
            bytes,
            entries,
            evictions: self.evictions.load(Relaxed),
        }
    }
}

/// The first `len` bytes of `f` (a file read at explicit offsets, so the open
/// file is shared safely with responses being sent from it).
fn read_file(f: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; len as usize];
    f.read_exact_at(&mut data, 0)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn types() {
        let p = Policy::new(&[DEFAULT_TYPES.to_string()], 0).unwrap();
        for yes in [
            "text/html; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/json",
            "image/svg+xml; charset=utf-8",
            "application/wasm",
        ] {
            assert!(p.covers(yes), "{yes}");
        }
        for no in [
            "image/png",
            "video/mp4",
            "application/gzip",
            "application/zip",
            "font/woff2",
            "application/octet-stream",
            "textual/x",
        ] {
            assert!(!p.covers(no), "{no}");
        }
        assert!(Policy::new(&["text".into()], 0).is_err());
        assert!(Policy::new(&["text/h tml".into()], 0).is_err());
        assert!(Policy::new(&["*/*".into()], 0).is_err());
    }

    #[test]
    fn encodings_round_trip() {
        let data = "function f() { return 42; }\n".repeat(500);
        let gz = encode(Coding::Gzip, data.as_bytes()).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let br = encode(Coding::Br, data.as_bytes()).unwrap();
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, data.as_bytes());
        let zs = encode(Coding::Zstd, data.as_bytes()).unwrap();
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), data.as_bytes());
        assert!(gz.len() < data.len() / 10 && br.len() < gz.len());
    }
}
