//! The cache of resolved files, keyed by request path and sharded to spread lock
//! contention. It holds at most a budget of open descriptors, so connections keep
//! theirs, and lets go of files that have been deleted.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Content, Entry};
use crate::sys;

const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (the cache is a hint, not a store).
const SHARD_ENTRIES: usize = 256;
/// Bytes of small-file content kept per shard.
const SHARD_BYTES: u64 = 4 * 1024 * 1024;
/// How often cached descriptors are checked for files deleted meanwhile.
const SWEEP_MS: u64 = 1000;

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, Arc<Entry>>,
    bytes: u64,
}

/// Cached entries, with a count of the descriptors they hold.
#[derive(Debug)]
pub(super) struct Cache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    /// Entries holding an open file, across all shards.
    open: AtomicUsize,
    /// The most such entries kept.
    budget: usize,
    swept_ms: AtomicU64,
    /// Where the next eviction starts, so no shard is always the one emptied.
    next_shed: AtomicUsize,
}

/// Bytes held in memory by an entry and its siblings.
fn memory_len(e: &Entry) -> u64 {
    e.all()
        .map(|r| match &r.content {
            Content::Memory(m) => m.len() as u64,
            Content::Disk(_) => 0,
        })
        .sum()
}

/// Descriptors held by an entry and its siblings.
fn fds(e: &Entry) -> usize {
    e.all()
        .filter(|r| matches!(r.content, Content::Disk(_)))
        .count()
}

fn holds_fd(e: &Entry) -> bool {
    fds(e) > 0
}

impl Cache {
    /// An empty cache that keeps at most `budget` files open.
    pub(super) fn new(budget: usize) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            open: AtomicUsize::new(0),
            budget,
            swept_ms: AtomicU64::new(0),
            next_shed: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Accounts for an entry leaving a shard that holds `bytes`.
    fn forget(&self, bytes: &mut u64, e: &Entry) {
        *bytes = bytes.saturating_sub(memory_len(e));
        self.open.fetch_sub(fds(e), Ordering::Relaxed);
    }

    /// The cached entry for `key`, unchecked.
    pub(super) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.shard(key).lock().map.get(key).cloned()
    }

    /// Drops the entry for `key`, if any.
    pub(super) fn remove(&self, key: &str) {
        let mut shard = self.shard(key).lock();
        if let Some(old) = shard.map.remove(key) {
            self.forget(&mut shard.bytes, &old);
        }
    }

    /// Caches `entry` under `key`, evicting to stay within the budgets.
    pub(super) fn insert(&self, key: &str, entry: Arc<Entry>) {
        if holds_fd(&entry) {
            if self.budget == 0 {
                // Served, then closed when the last response using it is done.
                return;
            }
            if self.open.load(Ordering::Relaxed) >= self.budget {
                self.shed(self.budget / 2);
            }
        }
        let size = memory_len(&entry);
        let mut shard = self.shard(key).lock();
        if shard.map.len() >= SHARD_ENTRIES || shard.bytes + size > SHARD_BYTES {
            let old = std::mem::take(&mut shard.map);
            for e in old.values() {
                self.forget(&mut shard.bytes, e);
            }
        }
        self.open.fetch_add(fds(&entry), Ordering::Relaxed);
        shard.bytes += size;
        if let Some(old) = shard.map.insert(key.into(), entry) {
            self.forget(&mut shard.bytes, &old);
        }
    }

    /// Closes cached files, shard by shard, until at most `target` stay open.
    pub(super) fn shed(&self, target: usize) {
        let start = self.next_shed.fetch_add(1, Ordering::Relaxed);
        for i in 0..SHARDS {
            if self.open.load(Ordering::Relaxed) <= target {
                return;
            }
            self.retain(&self.shards[(start + i) % SHARDS], |e| !holds_fd(e));
        }
    }

    fn retain(&self, shard: &Mutex<Shard>, mut keep: impl FnMut(&Entry) -> bool) {
        let mut guard = shard.lock();
        let Shard { map, bytes } = &mut *guard;
        map.retain(|_, e| {
            let k = keep(e);
            if !k {
                self.forget(bytes, e);
            }
            k
        });
    }

    /// At most once per [`SWEEP_MS`], closes cached files that have been deleted, so
    /// their space is freed even if nobody asks for them again.
    pub(super) fn sweep(&self, now_ms: u64) {
        let last = self.swept_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_MS
            || self
                .swept_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if self.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        for shard in &self.shards {
            self.retain(shard, |e| {
                e.all().all(|r| match &r.content {
                    Content::Disk(f) => sys::fstat(f.as_fd()).is_ok_and(|st| st.nlink > 0),
                    Content::Memory(_) => true,
                })
            });
        }
    }

    /// Descriptors held by cached entries.
    #[cfg(test)]
    pub(super) fn open_files(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}
