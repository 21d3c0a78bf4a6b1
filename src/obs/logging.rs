//! server.log through `log` + `simplelog`, and the access log, written by a
//! background thread so no worker ever waits on the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

use crate::clock;
use crate::config::Config;

/// Batches of log bytes waiting for the writer thread.
const QUEUE: usize = 256;
/// A worker hands its access-log batch over at this size…
const BATCH: usize = 32 * 1024;
/// …or this often.
const BATCH_MS: u64 = 500;

enum Msg {
    Server(Vec<u8>),
    Access(Vec<u8>, u64),
    Reopen,
    /// Everything sent before has been written: acknowledge.
    Sync(Sender<()>),
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A log file that can be reopened after rotation.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: PathBuf) -> io::Result<LogFile> {
        let file = open_append(&path)?;
        Ok(LogFile {
            path,
            file: Mutex::new(file),
        })
    }

    fn reopen(&self) {
        match open_append(&self.path) {
            Ok(f) => *self.file.lock() = f,
            Err(e) => log::error!("reopen {}: {e}", self.path.display()),
        }
    }

    fn write_all(&self, bytes: &[u8]) {
        // Nowhere to report a failed log write; the next write tries again.
        let _ = self.file.lock().write_all(bytes);
    }
}

/// The `Write` end simplelog writes server.log through.
struct ServerSink {
    line: Vec<u8>,
    target: SinkTarget,
}

enum SinkTarget {
    Direct(Arc<LogFile>),
    Thread(Sender<Msg>),
}

impl Write for ServerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if buf.ends_with(b"\n") {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        match &self.target {
            SinkTarget::Direct(f) => {
                f.write_all(&self.line);
                self.line.clear();
            }
            SinkTarget::Thread(tx) => {
                let _ = tx.try_send(Msg::Server(std::mem::take(&mut self.line)));
            }
        }
        Ok(())
    }
}

/// Lets through at most `per_second` lines a second and counts the rest, so a flood
/// of bad requests cannot turn server.log into the bottleneck (or fill the disk).
#[derive(Debug)]
pub struct Throttle {
    per_second: u64,
    /// The current one-second window, as seconds on the shared clock.
    window: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
}

impl Throttle {
    /// A throttle passing `per_second` lines a second.
    pub const fn new(per_second: u64) -> Throttle {
        Throttle {
            per_second,
            window: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now. On the first line of a new window, the
    /// count of lines dropped in earlier windows is returned with it (and reset).
    pub fn allow(&self) -> Option<u64> {
        let now = clock::now_ms() / 1000 + 1;
        let window = self.window.load(Ordering::Relaxed);
        if window != now
            && self
                .window
                .compare_exchange(window, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.passed.store(0, Ordering::Relaxed);
        }
        if self.passed.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.dropped.swap(0, Ordering::Relaxed))
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The running log setup; keep it alive for the life of the server.
pub struct Logs {
    server: Option<Arc<LogFile>>,
    tx: Option<Sender<Msg>>,
    access: bool,
    dropped: Arc<AtomicU64>,
    /// The writer thread; it runs for the life of the process (the global logger
    /// keeps a sender), so exit calls [`Logs::sync`] instead of joining it.
    _thread: Option<JoinHandle<()>>,
}

impl Logs {
    /// Opens the log files and installs the global logger.
    pub fn init(cfg: &Config) -> io::Result<Logs> {
        let mut builder = ConfigBuilder::new();
        builder
            .set_time_format_rfc3339()
            .set_thread_level(log::LevelFilter::Off);
        let _ = builder.set_time_offset_to_local();
        let lcfg = builder.build();
        let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
        if io::stderr().is_terminal() {
            loggers.push(TermLogger::new(
                log::LevelFilter::Trace,
                lcfg.clone(),
                TerminalMode::Stderr,
                ColorChoice::Auto,
            ));
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let mut logs = Logs {
            server: None,
            tx: None,
            access: false,
            dropped: dropped.clone(),
            _thread: None,
        };
        if !cfg.close_log {
            std::fs::create_dir_all(&cfg.log_dir)?;
            let access_path = match cfg.access_log.as_str() {
                "off" => None,
                "on" => Some(cfg.log_dir.join("access.log")),
                path => Some(PathBuf::from(path)),
            };
            let server = Arc::new(LogFile::open(cfg.log_dir.join("server.log"))?);
            let access = access_path.map(LogFile::open).transpose()?;
            let access_on = access.is_some();
            if cfg.log_async || access.is_some() {
                let (tx, rx) = crossbeam_channel::bounded(QUEUE);
                let thread_server = cfg.log_async.then(|| server.clone());
                let thread_access = access.map(Arc::new);
                let d = dropped.clone();
                logs._thread = Some(
                    std::thread::Builder::new()
                        .name("hearth-log".into())
                        .spawn(move || writer(rx, thread_server, thread_access, d))?,
                );
                logs.access = access_on;
                logs.tx = Some(tx);
            }
            let target = match (&logs.tx, cfg.log_async) {
                (Some(tx), true) => SinkTarget::Thread(tx.clone()),
                _ => SinkTarget::Direct(server.clone()),
            };
            logs.server = Some(server);
            loggers.push(WriteLogger::new(
                log::LevelFilter::Trace,
                lcfg,
                ServerSink {
                    line: Vec::new(),
                    target,
                },
            ));
        }
        // A second init in the same process (tests) keeps the first logger.
        // The loggers pass everything and the global maximum filters, so a
        // configuration reload can change the level with `log::set_max_level`.
        if CombinedLogger::init(loggers).is_ok() {
            log::set_max_level(cfg.log_level);
        }
        Ok(logs)
    }

    /// A per-worker access-log writer, if the access log is on.
    pub fn access_writer(&self) -> Option<AccessLog> {
        let tx = self.tx.clone().filter(|_| self.access)?;
        Some(AccessLog {
            tx,
            buf: Vec::with_capacity(BATCH),
            lines: 0,
            since: clock::now_ms(),
            dropped: self.dropped.clone(),
        })
    }

    /// Reopens every log file (SIGHUP, after rotation).
    pub fn reopen(&self) {
        if let Some(server) = &self.server {
            server.reopen();
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Reopen);
        }
        log::info!("log files reopened");
    }
}

impl Logs {
    /// Waits (at most two seconds) until the log thread has written everything sent
    /// before this call; used at exit so the last lines are not lost.
    pub fn sync(&self) {
        log::logger().flush();
        if let Some(tx) = &self.tx {
            let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
            if tx
                .send_timeout(Msg::Sync(ack_tx), std::time::Duration::from_secs(2))
                .is_ok()
            {
                let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(2));
            }
        }
    }
}

fn writer(
    rx: Receiver<Msg>,
    server: Option<Arc<LogFile>>,
    access: Option<Arc<LogFile>>,
    dropped: Arc<AtomicU64>,
) {
    let mut reported = 0;
    for msg in rx {
        match msg {
            Msg::Server(bytes) => {
                if let Some(s) = &server {
                    s.write_all(&bytes);
                }
            }
            Msg::Access(bytes, _) => {
                if let Some(a) = &access {
                    a.write_all(&bytes);
                }
                let d = dropped.load(Ordering::Relaxed);
                if d != reported {
                    log::warn!("access log fell behind: {} lines dropped so far", d);
                    reported = d;
                }
            }
            Msg::Reopen => {
                if let Some(s) = &server {
                    s.reopen();
                }
                if let Some(a) = &access {
                    a.reopen();
                }
            }
            Msg::Sync(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// A worker's access-log batch.
pub struct AccessLog {
    tx: Sender<Msg>,
    buf: Vec<u8>,
    lines: u64,
    since: u64,
    dropped: Arc<AtomicU64>,
}

/// What one access-log line records.
pub struct Entry<'a> {
    /// Client address.
    pub peer: &'a SocketAddr,
    /// Method, target and version, or `None` for a request that could not be parsed.
    pub request: Option<(&'a str, &'a str, u8)>,
    /// Status code.
    pub status: u16,
    /// Body bytes in the response.
    pub bytes: u64,
    /// Referer.
    pub referer: Option<&'a str>,
    /// User-Agent.
    pub user_agent: Option<&'a str>,
}

fn push_escaped(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            buf.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            buf.push(b);
        }
    }
}

impl AccessLog {
    /// Appends one line in the combined log format.
    pub fn record(&mut self, e: &Entry<'_>) {
        use crate::format::push_u64;
        let b = &mut self.buf;
        let ip = match e.peer.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        match ip {
            // Digits by hand: `Display` for an address goes through the formatting
            // machinery, which showed in profiles of the keep-alive benchmark.
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        b.push(b'.');
                    }
                    push_u64(b, u64::from(octet));
                }
            }
            // Formatting into the batch buffer allocates nothing.
            v6 => {
                let _ = write!(b, "{v6}");
            }
        }
        b.extend_from_slice(b" - - [");
        push_clf_time(b);
        b.extend_from_slice(b"] \"");
        match e.request {
            Some((method, target, minor)) => {
                push_escaped(b, method);
                b.push(b' ');
                push_escaped(b, target);
                b.extend_from_slice(if minor == 0 {
                    b" HTTP/1.0"
                } else {
                    b" HTTP/1.1"
                });
            }
            None => b.push(b'-'),
        }
        b.extend_from_slice(b"\" ");
        push_u64(b, u64::from(e.status));
        b.push(b' ');
        push_u64(b, e.bytes);
        for v in [e.referer, e.user_agent] {
            b.extend_from_slice(b" \"");
            match v {
                Some(v) => push_escaped(b, v),
                None => b.push(b'-'),
            }
            b.push(b'"');
        }
        b.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= BATCH || clock::now_ms().saturating_sub(self.since) >= BATCH_MS {
            self.flush();
        }
    }

    /// Hands the batch to the writer thread; drops (and counts) it if the queue is full.
    pub fn flush(&mut self) {
        self.since = clock::now_ms();
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        match self.tx.try_send(Msg::Access(batch, self.lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Access(mut batch, lines))) => {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
                batch.clear();
                self.buf = batch;
            }
            Err(_) => {}
        }
        self.lines = 0;
    }
}

thread_local! {
    static CLF_TIME: std::cell::RefCell<(u64, [u8; 26])> = const { std::cell::RefCell::new((u64::MAX, [b' '; 26])) };
}

/// Appends the time as `23/Nov/2026:11:08:00 +0000`, formatted once a second per thread.
fn push_clf_time(buf: &mut Vec<u8>) {
    let secs = crate::format::unix_secs(std::time::SystemTime::now());
    CLF_TIME.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, clf_time(secs));
        }
        buf.extend_from_slice(&c.1);
    });
}

/// Formats seconds since the epoch in the common log format's time (UTC).
pub fn clf_time(secs: u64) -> [u8; 26] {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let mut out = [b' '; 26];
    out.copy_from_slice(&s.as_bytes()[..26]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_times() {
        assert_eq!(&clf_time(0), b"01/Jan/1970:00:00:00 +0000");
        assert_eq!(&clf_time(784_111_777), b"06/Nov/1994:08:49:37 +0000");
        assert_eq!(&clf_time(1_709_210_096), b"29/Feb/2024:12:34:56 +0000");
    }

    #[test]
    fn escaping() {
        let mut b = Vec::new();
        push_escaped(&mut b, "a\"b\\c\x01é");
        assert_eq!(b, b"a\\x22b\\x5Cc\\x01\\xC3\\xA9");
    }
}
