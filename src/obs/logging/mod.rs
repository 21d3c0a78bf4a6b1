//! server.log through `log` + `simplelog`, and the access log, written by a
//! background thread so no worker ever waits on the disk.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

use crate::config::access_log::LogFile;
use crate::config::Config;

mod access;
mod json;

pub use access::{clf_time, AccessLog, Entry};

/// Batches of log bytes waiting for the writer thread.
const QUEUE: usize = 256;
/// A worker hands its access-log batch over at this size…
const BATCH: usize = 32 * 1024;
/// …or this often.
const BATCH_MS: u64 = 500;

enum Msg {
    Server(Vec<u8>),
    /// A batch of access-log lines for a site's own log, or the main one.
    Access(Option<Arc<LogFile>>, Vec<u8>),
    Reopen,
    /// Everything sent before has been written: acknowledge.
    Sync(Sender<()>),
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

/// The running log setup; keep it alive for the life of the server.
pub struct Logs {
    server: Option<Arc<LogFile>>,
    tx: Option<Sender<Msg>>,
    /// Whether the main access log is on (sites may have logs of their own).
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
        let mut logs = Logs {
            server: None,
            tx: None,
            access: false,
            dropped: Arc::new(AtomicU64::new(0)),
            _thread: None,
        };
        if !cfg.close_log {
            let sink = logs.open_files(cfg)?;
            loggers.push(WriteLogger::new(log::LevelFilter::Trace, lcfg, sink));
        }
        // A second init in the same process (tests) keeps the first logger.
        // The loggers pass everything and the global maximum filters, so a
        // configuration reload can change the level with `log::set_max_level`.
        if CombinedLogger::init(loggers).is_ok() {
            log::set_max_level(cfg.log_level);
        }
        Ok(logs)
    }

    /// Opens server.log and the main access log and starts the writer thread, which
    /// also writes the sites' own access logs; returns the sink for server.log.
    fn open_files(&mut self, cfg: &Config) -> io::Result<ServerSink> {
        std::fs::create_dir_all(&cfg.log_dir)?;
        let access_path = match cfg.access_log.as_str() {
            "off" => None,
            "on" => Some(cfg.log_dir.join("access.log")),
            path => Some(PathBuf::from(path)),
        };
        let server = Arc::new(LogFile::open(cfg.log_dir.join("server.log"))?);
        let access = access_path.map(LogFile::open).transpose()?;
        self.access = access.is_some();
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread_server = cfg.log_async.then(|| server.clone());
        let thread_access = access.map(Arc::new);
        let d = self.dropped.clone();
        self._thread = Some(
            std::thread::Builder::new()
                .name("hearth-log".into())
                .spawn(move || writer(rx, thread_server, thread_access, d))?,
        );
        let target = match cfg.log_async {
            true => SinkTarget::Thread(tx.clone()),
            false => SinkTarget::Direct(server.clone()),
        };
        self.tx = Some(tx);
        self.server = Some(server);
        Ok(ServerSink {
            line: Vec::new(),
            target,
        })
    }

    /// A per-worker access-log writer, unless logging is off altogether.
    pub fn access_writer(&self) -> Option<AccessLog> {
        let tx = self.tx.clone()?;
        Some(AccessLog::new(tx, self.access, self.dropped.clone()))
    }

    /// Reopens server.log and the main access log (SIGHUP, after rotation); the
    /// sites' own logs are reopened by their [`Sites`](crate::config::site::Sites).
    pub fn reopen(&self) {
        if let Some(server) = &self.server {
            server.reopen();
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Reopen);
        }
        log::info!("log files reopened");
    }

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
            Msg::Access(to, bytes) => {
                if let Some(f) = to.as_ref().or(access.as_ref()) {
                    f.write_all(&bytes);
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
