//! Live counters: plain atomics, updated without locks on the hot path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

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
    /// Open connections and timer entries of each reactor.
    pub reactors: Vec<(usize, usize)>,
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
        reactors: Vec<(usize, usize)>,
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
            tls_handshakes: std::array::from_fn(|i| self.tls_handshakes[i].load(Relaxed)),
            tls_failures: self.tls_failures.load(Relaxed),
        }
    }
}

impl Snapshot {
    /// Plain text in the shape of nginx's stub_status, plus the extra counters.
    pub fn text(&self) -> String {
        let c = &self.by_class;
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "Active connections: {}\nserver accepts handled requests\n {} {} {}\nReading: {} Writing: {} Waiting: {}\n\
             uptime_seconds: {}\nqueue_depth: {}\nworkers_busy: {}\nworkers: {}\n\
             responses: 1xx={} 2xx={} 3xx={} 4xx={} 5xx={}\nbytes_sent: {}\n",
            self.active,
            self.accepted,
            self.handled,
            self.requests,
            self.reading,
            self.writing,
            self.waiting,
            self.uptime_s,
            self.queue_depth,
            self.busy,
            self.workers,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            self.bytes_sent
        );
        let _ = write!(s, "reactors: {}\nreactor_active:", self.reactors.len());
        for (n, _) in &self.reactors {
            let _ = write!(s, " {n}");
        }
        s.push_str("\nreactor_timers:");
        for (_, t) in &self.reactors {
            let _ = write!(s, " {t}");
        }
        let _ = writeln!(
            s,
            "\ntls_handshakes: tls1.2={} tls1.3={}\ntls_failures: {}",
            self.tls_handshakes[0], self.tls_handshakes[1], self.tls_failures
        );
        s
    }

    /// The same as JSON.
    pub fn json(&self) -> String {
        let c = &self.by_class;
        format!(
            "{{\"uptime_s\":{},\"connections\":{{\"active\":{},\"reading\":{},\"writing\":{},\"idle\":{},\"total\":{},\"handled\":{}}},\
             \"requests\":{},\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},\
             \"bytes_sent\":{},\"queue_depth\":{},\"workers_busy\":{},\"workers\":{},\
             \"reactors\":{},\"reactor_active\":[{}],\"reactor_timers\":[{}],\
             \"tls\":{{\"handshakes_tls12\":{},\"handshakes_tls13\":{},\"failures\":{}}}}}\n",
            self.uptime_s,
            self.active,
            self.reading,
            self.writing,
            self.waiting,
            self.accepted,
            self.handled,
            self.requests,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            self.bytes_sent,
            self.queue_depth,
            self.busy,
            self.workers,
            self.reactors.len(),
            list(self.reactors.iter().map(|r| r.0)),
            list(self.reactors.iter().map(|r| r.1)),
            self.tls_handshakes[0],
            self.tls_handshakes[1],
            self.tls_failures,
        )
    }
}

/// Numbers joined by commas, for a JSON array.
fn list(items: impl Iterator<Item = usize>) -> String {
    items.map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}
