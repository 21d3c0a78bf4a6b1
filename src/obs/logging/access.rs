//! A worker's access-log writer: lines in the combined or the JSON format, batched
//! per destination (the main log, or a site's own) and handed to the log thread.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use super::{json, Msg, BATCH, BATCH_MS};
use crate::clock;
use crate::config::access_log::{LogFile, LogFormat, SiteLog};
use crate::format::push_u64;

/// Lines waiting for one destination.
struct Batch {
    buf: Vec<u8>,
    lines: u64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            buf: Vec::with_capacity(BATCH),
            lines: 0,
        }
    }
}

/// A worker's access-log batches.
pub struct AccessLog {
    tx: Sender<Msg>,
    /// Whether the main access log is on.
    main_on: bool,
    main: Batch,
    /// Batches for sites' own logs, by file; emptied at each flush, so a file a
    /// reload replaced is not held open past it.
    sites: Vec<(Arc<LogFile>, Batch)>,
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
    /// The host the request named (`Host`, or the absolute-form authority).
    pub host: Option<&'a str>,
    /// The user basic authentication let in.
    pub user: Option<&'a str>,
    /// How long the request took to plan (measured for the JSON format only).
    pub request_time: Option<Duration>,
    /// The TLS version of an HTTPS connection (`TLSv1.3`).
    pub tls: Option<&'a str>,
}

pub(super) fn push_escaped(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            buf.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            buf.push(b);
        }
    }
}

/// The client address, an IPv4-mapped IPv6 one as IPv4.
pub(super) fn push_ip(b: &mut Vec<u8>, peer: &SocketAddr) {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        // Digits by hand: `Display` for an address goes through the formatting
        // machinery, which showed in profiles of the keep-alive benchmark.
        IpAddr::V4(v4) => {
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
}

/// Appends one line in the combined log format.
fn combined(b: &mut Vec<u8>, e: &Entry<'_>) {
    push_ip(b, e.peer);
    b.extend_from_slice(b" - ");
    match e.user {
        Some(u) => push_escaped(b, u),
        None => b.push(b'-'),
    }
    b.extend_from_slice(b" [");
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
}

impl AccessLog {
    pub(super) fn new(tx: Sender<Msg>, main_on: bool, dropped: Arc<AtomicU64>) -> AccessLog {
        AccessLog {
            tx,
            main_on,
            main: Batch::new(),
            sites: Vec::new(),
            since: clock::now_ms(),
            dropped,
        }
    }

    /// Whether a line for a site logging to `to` would be written anywhere: the
    /// caller measures what only a line needs (the request time) only then.
    pub fn wants(&self, to: &SiteLog) -> bool {
        match to {
            SiteLog::Main => self.main_on,
            SiteLog::Off => false,
            SiteLog::Own(_) => true,
        }
    }

    /// Appends one line in `format` to the batch of `to`.
    pub fn record(&mut self, to: &SiteLog, format: LogFormat, e: &Entry<'_>) {
        let batch = match to {
            SiteLog::Off => return,
            SiteLog::Main if !self.main_on => return,
            SiteLog::Main => &mut self.main,
            SiteLog::Own(file) => {
                let i = match self.sites.iter().position(|(f, _)| Arc::ptr_eq(f, file)) {
                    Some(i) => i,
                    None => {
                        let batch = Batch {
                            buf: Vec::new(),
                            lines: 0,
                        };
                        self.sites.push((file.clone(), batch));
                        self.sites.len() - 1
                    }
                };
                &mut self.sites[i].1
            }
        };
        match format {
            LogFormat::Combined => combined(&mut batch.buf, e),
            LogFormat::Json => json::line(&mut batch.buf, e),
        }
        batch.lines += 1;
        let full = batch.buf.len() >= BATCH;
        if full || clock::now_ms().saturating_sub(self.since) >= BATCH_MS {
            self.flush();
        }
    }

    /// Hands the batches to the writer thread; drops (and counts) one if the queue
    /// is full.
    pub fn flush(&mut self) {
        self.since = clock::now_ms();
        if !self.main.buf.is_empty() {
            let main = std::mem::replace(&mut self.main, Batch::new());
            if let Some(back) = self.send(None, main) {
                self.main = back;
            }
        }
        for (file, batch) in std::mem::take(&mut self.sites) {
            self.send(Some(file), batch);
        }
    }

    /// Sends one batch; gives back its (emptied) buffer when it was not sent.
    fn send(&self, to: Option<Arc<LogFile>>, mut batch: Batch) -> Option<Batch> {
        if batch.buf.is_empty() {
            return Some(batch);
        }
        let lines = batch.lines;
        match self.tx.try_send(Msg::Access(to, batch.buf)) {
            Ok(()) => None,
            Err(TrySendError::Full(Msg::Access(_, mut buf))) => {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
                buf.clear();
                batch.buf = buf;
                batch.lines = 0;
                Some(batch)
            }
            Err(_) => None,
        }
    }
}

/// A per-thread cache of the current second, formatted.
pub(super) type TimeCache<const N: usize> = std::cell::RefCell<(u64, [u8; N])>;

thread_local! {
    static CLF_TIME: TimeCache<26> = const { std::cell::RefCell::new((u64::MAX, [b' '; 26])) };
}

/// Appends the current time as `make` formats it; `make` runs once a second per
/// thread, whose result `cache` keeps.
pub(super) fn push_time<const N: usize>(
    cache: &'static std::thread::LocalKey<TimeCache<N>>,
    make: fn(u64) -> [u8; N],
    buf: &mut Vec<u8>,
) {
    let secs = crate::format::unix_secs(std::time::SystemTime::now());
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, make(secs));
        }
        buf.extend_from_slice(&c.1);
    });
}

/// Appends the time as `23/Nov/2026:11:08:00 +0000`.
fn push_clf_time(buf: &mut Vec<u8>) {
    push_time(&CLF_TIME, clf_time, buf);
}

/// Year, month (1-12), day, hour, minute and second of seconds since the epoch (UTC).
pub(super) fn civil(secs: u64) -> (i64, usize, i64, u64, u64, u64) {
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
    (
        year,
        month as usize,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

/// Formats seconds since the epoch in the common log format's time (UTC).
pub fn clf_time(secs: u64) -> [u8; 26] {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, h, m, s) = civil(secs);
    let s = format!(
        "{day:02}/{}/{year:04}:{h:02}:{m:02}:{s:02} +0000",
        MONTHS[month - 1],
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
