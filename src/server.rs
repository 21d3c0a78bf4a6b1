//! The server as a library: settings derived from the command line, the state the
//! reactor and workers share, and start-up.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::conn::{Conn, Token};
use crate::files::{self, Files};
use crate::http::request::Limits;
use crate::logging::Logs;
use crate::reactor::Reactor;
use crate::slots::Slots;
use crate::stats::Stats;
use crate::sys::{self, Epoll, EventFd, SignalFd};
use crate::worker::Worker;

/// Descriptors kept back from `--max-conns` for files being sent, logs and epoll.
const FD_RESERVE: u64 = 64;
/// Read buffers kept for reuse.
const BUFFER_POOL: usize = 512;
/// Capacity of a pooled read buffer.
pub const BUFFER_SIZE: usize = 4096;

/// An IP network, for `--stats-allow`.
#[derive(Debug, Clone, Copy)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().ok()? };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Settings the workers consult on every request, derived once from [`Config`].
#[derive(Debug)]
pub struct Settings {
    /// Head limits.
    pub limits: Limits,
    /// Largest request body.
    pub max_body: u64,
    /// Idle / no-progress timeout.
    pub timeout_ms: u64,
    /// Time allowed for a request head.
    pub header_timeout_ms: u64,
    /// Pre-encoded headers added to every response.
    pub extra_headers: Vec<u8>,
    /// Cache-Control for file responses.
    pub cache_control: Option<String>,
    /// CORS origin.
    pub cors: Option<String>,
    /// Health path ("" = off).
    pub health_path: String,
    /// Stats path.
    pub stats_path: Option<String>,
    /// Networks allowed to read stats besides loopback.
    pub stats_allow: Vec<Cidr>,
    /// Worker threads.
    pub workers: usize,
    /// Connection limit.
    pub max_conns: usize,
    /// Grace period on stop.
    pub grace_ms: u64,
    /// Wait for EPOLLOUT before the first write of every response.
    pub defer_write: bool,
}

impl Settings {
    /// Whether `ip` may read the stats page.
    pub fn stats_allowed(&self, ip: IpAddr) -> bool {
        let loopback = match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        loopback || self.stats_allow.iter().any(|c| c.contains(ip))
    }
}

/// A configuration problem found before start-up (exit code 2).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn header_line(spec: &str) -> Result<Vec<u8>, ConfigError> {
    let bad = || ConfigError(format!("--header {spec:?}: expected 'Name: value'"));
    let (name, value) = spec.split_once(':').ok_or_else(bad)?;
    let value = value.trim();
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if name.is_empty()
        || !name.bytes().all(token)
        || value.bytes().any(|c| c < 0x20 && c != b'\t' || c == 0x7f)
    {
        return Err(bad());
    }
    Ok(format!("{name}: {value}\r\n").into_bytes())
}

impl Settings {
    /// Validates the configuration and derives the settings.
    pub fn from_config(cfg: &Config, nofile: u64) -> Result<Settings, ConfigError> {
        let workers = cfg.threads.unwrap_or_else(num_cpus::get).max(1);
        let mut extra = b"X-Content-Type-Options: nosniff\r\n".to_vec();
        for h in &cfg.headers {
            extra.extend_from_slice(&header_line(h)?);
        }
        let mut cors = None;
        if let Some(origin) = &cfg.cors {
            extra.extend_from_slice(&header_line(&format!(
                "Access-Control-Allow-Origin: {origin}"
            ))?);
            extra.extend_from_slice(b"Access-Control-Expose-Headers: Content-Length, Content-Range, ETag, Last-Modified\r\n");
            if origin != "*" {
                extra.extend_from_slice(b"Vary: Origin\r\n");
            }
            cors = Some(origin.clone());
        }
        if let Some(cc) = &cfg.cache_control {
            header_line(&format!("Cache-Control: {cc}"))?;
        }
        let stats_allow = cfg
            .stats_allow
            .iter()
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    ConfigError(format!("--stats-allow {s:?}: not an address or CIDR"))
                })
            })
            .collect::<Result<_, _>>()?;
        for (name, p) in [
            ("--health-path", Some(&cfg.health_path)),
            ("--stats-path", cfg.stats_path.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| !p.is_empty()) {
                if !p.starts_with('/') {
                    return Err(ConfigError(format!("{name} must start with '/'")));
                }
            }
        }
        if cfg.max_header < 64 || cfg.max_uri < 16 {
            return Err(ConfigError(
                "--max-header and --max-uri are too small".into(),
            ));
        }
        let fd_room = nofile.saturating_sub(FD_RESERVE + workers as u64).max(1);
        let max_conns = cfg.max_conns.unwrap_or(fd_room as usize).max(1);
        Ok(Settings {
            limits: Limits {
                max_uri: cfg.max_uri,
                max_header: cfg.max_header,
            },
            max_body: cfg.max_body,
            timeout_ms: cfg.timeout.max(1) * 1000,
            header_timeout_ms: cfg.header_timeout.max(1) * 1000,
            extra_headers: extra,
            cache_control: cfg.cache_control.clone(),
            cors,
            health_path: cfg.health_path.clone(),
            stats_path: cfg.stats_path.clone().filter(|p| !p.is_empty()),
            stats_allow,
            workers,
            max_conns,
            grace_ms: cfg.grace * 1000,
            defer_write: cfg.defer_write,
        })
    }
}

/// Connections handed to one worker at once: the reactor splits what one
/// `epoll_wait` made ready into at most one batch per worker, so a wake-up serves
/// many requests instead of one.
// The boxes are the point: a connection moves between threads as one pointer.
#[allow(clippy::vec_box)]
pub type Batch = Vec<Box<Conn>>;

/// A message from a worker to the reactor.
#[derive(Debug, Clone, Copy)]
pub enum Notice {
    /// The worker closed this connection; its slot is free.
    Closed(Token),
    /// Re-arming failed; the reactor must close the connection in this slot.
    Kill(Token),
    /// The connection now waits in its slot: watch this deadline.
    Timer(Token, u64),
}

/// What the reactor and the workers share.
pub struct Shared {
    /// Derived settings.
    pub settings: Settings,
    /// The document root.
    pub files: Files,
    /// The epoll instance (workers re-arm through it).
    pub epoll: Epoll,
    /// Connection slots.
    pub slots: Slots,
    /// Counters.
    pub stats: Stats,
    /// Set once a stop has begun.
    pub draining: AtomicBool,
    notices: Sender<Notice>,
    waker: EventFd,
    /// Connections handed to the queue and not yet taken by a worker.
    pub queued: AtomicUsize,
    buffers: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

impl Shared {
    /// Tells the reactor something; `Kill` also wakes it.
    pub fn notify(&self, n: Notice) {
        let wake = matches!(n, Notice::Kill(_));
        let _ = self.notices.send(n);
        if wake {
            self.waker.wake();
        }
    }

    /// Puts `conn` back in its slot, then arms its descriptor for `events` (one-shot):
    /// `EPOLL_CTL_ADD` the first time, `EPOLL_CTL_MOD` after. Ownership passes to the
    /// reactor with the put, which must come first so the event finds the connection.
    /// On failure the connection stays in its slot and its token is returned.
    pub fn park(&self, mut conn: Box<Conn>, events: u32) -> Result<(), (Token, io::Error)> {
        let fd = conn.fd();
        let token = conn.token;
        let registered = std::mem::replace(&mut conn.registered, true);
        self.slots.put(conn);
        // Level-triggered + EPOLLONESHOT: at most one thread owns a connection, and
        // re-arming reports data that is already waiting, so a read shorter than the
        // buffer can stop without the extra read that edge-triggered mode needs to
        // reach EAGAIN: `strace -c -f` over `ab -n 5000 -c 500` counted 5,222 reads
        // for 5,000 requests (edge-triggered needs at least two per request).
        let events = events | sys::EV_ONESHOT;
        let r = if registered {
            self.epoll.modify(fd, events, token.0)
        } else {
            self.epoll.add(fd, events, token.0)
        };
        r.map_err(|e| (token, e))
    }

    /// Wakes the reactor.
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// The waker's descriptor.
    pub fn waker(&self) -> &EventFd {
        &self.waker
    }

    /// Connections waiting in the work queue.
    pub fn queue_len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A read buffer from the pool, or a new one.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER_SIZE))
    }

    /// Returns a read buffer to the pool (oversized ones are freed).
    pub fn release_buffer(&self, mut buf: Vec<u8>) {
        if buf.capacity() == BUFFER_SIZE {
            buf.clear();
            let _ = self.buffers.0.try_send(buf);
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    signals: Option<SignalFd>,
    notices: Receiver<Notice>,
    queue_tx: Sender<Batch>,
    queue_rx: Receiver<Batch>,
    logs: Option<Logs>,
    pid_file: Option<PathBuf>,
    reuseport: bool,
}

/// Errors from start-up.
#[derive(Debug)]
pub enum StartError {
    /// Bad configuration (exit code 2).
    Config(ConfigError),
    /// An OS error while setting up (exit code 1).
    Io(String, io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl Server {
    /// Validates `cfg`, opens the root, binds the listening socket and writes the pid
    /// file, if asked for. `signals` (from [`SignalFd::new`], made before any thread)
    /// lets SIGTERM/SIGHUP reach the reactor; `logs` is kept alive for SIGHUP reopening.
    pub fn bind(
        cfg: &Config,
        signals: Option<SignalFd>,
        logs: Option<Logs>,
    ) -> Result<Server, StartError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e| StartError::Io(what, e)
        };
        sys::ignore_sigpipe();
        let nofile = sys::raise_nofile_limit().unwrap_or(1024);
        let settings = Settings::from_config(cfg, nofile).map_err(StartError::Config)?;
        if !cfg.root.is_dir() {
            return Err(StartError::Config(ConfigError(format!(
                "root {:?} is not a directory",
                cfg.root
            ))));
        }
        let fd_budget = files::descriptor_budget(nofile, settings.max_conns, settings.workers);
        let files = Files::new(&cfg.root, cfg.follow_symlinks, cfg.autoindex, fd_budget)
            .map_err(io("open root"))?;
        let addr = SocketAddr::new(cfg.bind, cfg.port);
        let listener = sys::listen(
            addr,
            sys::ListenOptions {
                backlog: cfg.backlog,
                reuseport: cfg.reuseport,
            },
        )
        .map_err(io(&format!("listen on {addr}")))?;
        let local = listener.local_addr().map_err(io("local address"))?;
        let (notices_tx, notices) = crossbeam_channel::unbounded();
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let slots = Slots::new(settings.max_conns);
        let shared = Arc::new(Shared {
            files,
            epoll: Epoll::new().map_err(io("epoll"))?,
            slots,
            stats: Stats::default(),
            draining: AtomicBool::new(false),
            notices: notices_tx,
            waker: EventFd::new().map_err(io("eventfd"))?,
            queued: AtomicUsize::new(0),
            buffers: crossbeam_channel::bounded(BUFFER_POOL),
            settings,
        });
        if let Some(p) = &cfg.pid_file {
            write_pid_file(p).map_err(io(&format!("pid file {}", p.display())))?;
        }
        Ok(Server {
            shared,
            listener,
            local,
            signals,
            notices,
            queue_tx,
            queue_rx,
            logs,
            pid_file: cfg.pid_file.clone(),
            reuseport: cfg.reuseport,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle that stops the server gracefully from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: self.shared.clone(),
        }
    }

    /// Starts the workers and runs the reactor on this thread until stopped.
    pub fn run(self) -> io::Result<()> {
        let s = &self.shared.settings;
        log::info!(
            "hearth {} listening on {} root={} threads={} max_conns={}{}",
            env!("CARGO_PKG_VERSION"),
            self.local,
            self.shared.files.root().display(),
            s.workers,
            s.max_conns,
            if self.reuseport { " reuseport" } else { "" }
        );
        let logs = self.logs.map(Arc::new);
        let mut workers = Vec::with_capacity(s.workers);
        for i in 0..s.workers {
            let w = Worker::new(
                self.shared.clone(),
                logs.as_deref().and_then(Logs::access_writer),
            );
            let rx = self.queue_rx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("hearth-w{i}"))
                    .spawn(move || w.run(rx))?,
            );
        }
        drop(self.queue_rx);
        let reactor = Reactor::new(
            self.shared.clone(),
            self.listener,
            self.signals,
            self.notices,
            self.queue_tx,
            logs.clone(),
        )?;
        let result = reactor.run();
        for w in workers {
            let _ = w.join();
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
        log::info!("stopped");
        if let Some(l) = &logs {
            l.sync();
        }
        result
    }
}

/// Writes this process's id to `path` atomically (a reader never sees a partial
/// file): a temporary file beside it, then a rename.
fn write_pid_file(path: &std::path::Path) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path)
}

/// Stops a running server gracefully.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    /// Begins a graceful stop, as SIGTERM does.
    pub fn stop(&self) {
        crate::reactor::request_stop(&self.shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn header_lines() {
        assert_eq!(header_line("X-A: b c").unwrap(), b"X-A: b c\r\n");
        assert!(header_line("Bad Name: x").is_err());
        assert!(header_line("NoColon").is_err());
        assert!(header_line("X: a\r\nInjected: 1").is_err());
    }
}
