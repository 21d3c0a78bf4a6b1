//! Live counters: plain atomics, updated without locks on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Upper bounds of the request-duration histogram buckets, in microseconds (the
/// last bucket, `+Inf`, is implied).
pub const DURATION_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Request durations: one counter per bucket (not cumulative), their sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = DURATION_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn read(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram as read once.
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    /// Per bucket, not cumulative; the last is `+Inf`.
    pub buckets: [u64; DURATION_BUCKETS_US.len() + 1],
    /// Sum of the durations, microseconds.
    pub sum_us: u64,
}

/// What the configuration reloads did: the generation counts configurations that
/// took (1 at start), so a script can tell whether its SIGHUP did.
#[derive(Debug)]
pub struct Reloads {
    /// Configurations in force so far, the first included.
    pub generation: AtomicU64,
    /// Reloads that failed (the running configuration stayed).
    pub failed: AtomicU64,
    /// Why the last failed reload failed, until one succeeds.
    pub last_error: Mutex<Option<String>>,
}

impl Reloads {
    /// Counts one reload: a configuration that took (after it was swapped in, so
    /// whoever sees the new generation is answered from it), or the reason it did
    /// not.
    pub fn count(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                *self.last_error.lock() = None;
                let generation = self.generation.fetch_add(1, SeqCst) + 1;
                log::info!("configuration generation {generation}");
            }
            Err(e) => {
                *self.last_error.lock() = Some(e);
                self.failed.fetch_add(1, SeqCst);
            }
        }
    }
}

impl Default for Reloads {
    fn default() -> Self {
        Reloads {
            generation: AtomicU64::new(1),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// Counters of the on-the-fly compression cache, read once.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompressSnapshot {
    /// Responses served from the cache.
    pub hits: u64,
    /// Requests that found no cached variant.
    pub misses: u64,
    /// Variants compressed.
    pub compressions: u64,
    /// Bytes of compressed variants held.
    pub bytes: u64,
    /// Variants held.
    pub entries: u64,
    /// Variants dropped to stay within the size, or because their file changed.
    pub evictions: u64,
}

/// Where a connection is in its life, for the Reading/Writing/Waiting gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Reading a request head or body.
    Reading,
    /// Processing or writing a response.
    Writing,
    /// Idle keep-alive, waiting for the next request.
    Waiting,
}

/// A connection's place in the gauges. It leaves its gauge when dropped, so a
/// connection lost anywhere (a panic unwinding through a worker included) is never
/// counted as open afterwards.
#[derive(Debug)]
pub struct GaugeSlot {
    stats: Arc<Stats>,
    gauge: Gauge,
}

impl GaugeSlot {
    /// Enters `gauge`.
    pub fn new(stats: Arc<Stats>, gauge: Gauge) -> GaugeSlot {
        stats.enter(gauge);
        GaugeSlot { stats, gauge }
    }

    /// Moves to `gauge`.
    pub fn set(&mut self, gauge: Gauge) {
        if self.gauge != gauge {
            self.stats.leave(self.gauge);
            self.stats.enter(gauge);
            self.gauge = gauge;
        }
    }
}

impl Drop for GaugeSlot {
    fn drop(&mut self) {
        self.stats.leave(self.gauge);
    }
}

/// Server-wide counters.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections accepted and served (not refused with 503 at the limit).
    pub handled: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Responses by status class (index 0 = 1xx … 4 = 5xx).
    pub by_class: [AtomicU64; 5],
    /// Body and head bytes written.
    pub bytes_sent: AtomicU64,
    /// Workers running `process()` now.
    pub busy: AtomicI64,
    /// From a complete request head to the last byte of its response.
    pub durations: Histogram,
    /// Configuration reloads.
    pub reloads: Reloads,
    /// TLS handshakes completed: `[TLS 1.2, TLS 1.3]`.
    pub tls_handshakes: [AtomicU64; 2],
    /// TLS connections ended by a protocol error (a failed handshake, a bad
    /// record) or by plain HTTP sent to the TLS port.
    pub tls_failures: AtomicU64,
    reading: AtomicI64,
    writing: AtomicI64,
    waiting: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            by_class: Default::default(),
            bytes_sent: AtomicU64::new(0),
            busy: AtomicI64::new(0),
            durations: Histogram::default(),
            reloads: Reloads::default(),
            tls_handshakes: Default::default(),
            tls_failures: AtomicU64::new(0),
            reading: AtomicI64::new(0),
            writing: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
        }
    }
}

/// What the stats page shows, read once.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Open connections.
    pub active: i64,
    /// Reading a request.
    pub reading: i64,
    /// Writing a response.
    pub writing: i64,
    /// Idle keep-alive.
    pub waiting: i64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections handled.
    pub handled: u64,
    /// Requests.
    pub requests: u64,
    /// Responses by class.
    pub by_class: [u64; 5],
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Connections waiting in the work queue.
    pub queue_depth: usize,
    /// Workers busy.
    pub busy: i64,
    /// Worker threads.
    pub workers: usize,
    /// Open connections, timer entries and connections accepted so far, per reactor.
    pub reactors: Vec<(usize, usize, u64)>,
    /// Request durations.
    pub durations: HistogramSnapshot,
    /// Configurations in force so far (1 at start).
    pub config_generation: u64,
    /// Failed reloads.
    pub reloads_failed: u64,
    /// Why the last reload failed, if it did.
    pub reload_error: Option<String>,
    /// The compression cache.
    pub compress: CompressSnapshot,
    /// TLS handshakes completed with TLS 1.2 and with TLS 1.3.
    pub tls_handshakes: [u64; 2],
    /// TLS connections ended by a protocol error or plain HTTP.
    pub tls_failures: u64,
}

impl Stats {
    fn gauge(&self, g: Gauge) -> &AtomicI64 {
        match g {
            Gauge::Reading => &self.reading,
            Gauge::Writing => &self.writing,
            Gauge::Waiting => &self.waiting,
        }
    }

    /// A connection entered gauge `g`.
    pub fn enter(&self, g: Gauge) {
        self.gauge(g).fetch_add(1, Relaxed);
    }

    /// A connection left gauge `g`.
    pub fn leave(&self, g: Gauge) {
        self.gauge(g).fetch_sub(1, Relaxed);
    }

    /// Counts one response with `code`.
    pub fn response(&self, code: u16) {
        self.requests.fetch_add(1, Relaxed);
        let class = (code / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(
        &self,
        queue_depth: usize,
        workers: usize,
        reactors: Vec<(usize, usize, u64)>,
    ) -> Snapshot {
        let reading = self.reading.load(Relaxed).max(0);
        let writing = self.writing.load(Relaxed).max(0);
        let waiting = self.waiting.load(Relaxed).max(0);
        Snapshot {
            uptime_s: self.started.elapsed().as_secs(),
            active: reading + writing + waiting,
            reading,
            writing,
            waiting,
            accepted: self.accepted.load(Relaxed),
            handled: self.handled.load(Relaxed),
            requests: self.requests.load(Relaxed),
            by_class: std::array::from_fn(|i| self.by_class[i].load(Relaxed)),
            bytes_sent: self.bytes_sent.load(Relaxed),
            queue_depth,
            busy: self.busy.load(Relaxed).max(0),
            workers,
            reactors,
            durations: self.durations.read(),
            config_generation: self.reloads.generation.load(Relaxed),
            reloads_failed: self.reloads.failed.load(Relaxed),
            reload_error: self.reloads.last_error.lock().clone(),
            compress: CompressSnapshot::default(),
            tls_handshakes: std::array::from_fn(|i| self.tls_handshakes[i].load(Relaxed)),
            tls_failures: self.tls_failures.load(Relaxed),
        }
    }
}
