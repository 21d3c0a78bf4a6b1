//! The server as a library: bind the listening sockets, build the shared state,
//! start the workers and the reactors, and wait for them to stop.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::config::file::Loaded;
use crate::config::reload::Reloader;
use crate::config::settings::{ConfigError, Settings};
use crate::config::sites::Sites;
use crate::config::tls::TlsSetup;
use crate::config::Config;
use crate::driver::listen::{self, Bound, Listeners};
use crate::driver::reactor::{Control, Reactor};
use crate::driver::shared::{Batch, Link, Notice, Shared};
use crate::driver::worker::Worker;
use crate::obs::logging::Logs;
use crate::sys::{self, SignalFd};

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Listeners>,
    local: Vec<SocketAddr>,
    local_tls: Vec<SocketAddr>,
    signals: Option<SignalFd>,
    reloader: Reloader,
    notices: Vec<Receiver<Notice>>,
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

fn io_error(what: &str) -> impl FnOnce(io::Error) -> StartError {
    let what = what.to_string();
    move |e| StartError::Io(what, e)
}

impl Server {
    /// Validates `cfg`, opens the root, binds the listening sockets and writes the
    /// pid file, if asked for. `signals` (from [`SignalFd::new`], made before any
    /// thread) lets SIGTERM/SIGHUP reach reactor 0; `logs` is kept alive for SIGHUP
    /// reopening.
    pub fn bind(
        cfg: &Config,
        signals: Option<SignalFd>,
        logs: Option<Logs>,
    ) -> Result<Server, StartError> {
        Self::bind_loaded(&Loaded::from_config(cfg.clone()), None, signals, logs)
    }

    /// As [`Server::bind`], for a configuration that may come from a file (with
    /// vhosts and header rules); with `reloader`, SIGHUP reloads that file, and
    /// without one it builds the running configuration again (roots resolved anew).
    pub fn bind_loaded(
        loaded: &Loaded,
        reloader: Option<Reloader>,
        signals: Option<SignalFd>,
        logs: Option<Logs>,
    ) -> Result<Server, StartError> {
        let cfg = &loaded.config;
        sys::ignore_sigpipe();
        let nofile = sys::raise_nofile_limit().unwrap_or(1024);
        let mut settings = Settings::from_config(cfg, nofile, 1 + loaded.vhosts.len())
            .map_err(|e| StartError::Config(loaded.locate(e)))?;
        let sites = Sites::build(loaded, settings.file_fds).map_err(StartError::Config)?;
        let tls = TlsSetup::new(loaded).map_err(|e| StartError::Config(loaded.locate(e)))?;
        // Plain HTTP on every address, then HTTPS on every address.
        let mut addrs: Vec<(SocketAddr, bool)> = cfg
            .bind
            .iter()
            .map(|ip| (SocketAddr::new(*ip, cfg.port), false))
            .collect();
        if tls.is_some() {
            addrs.extend(
                cfg.bind
                    .iter()
                    .map(|ip| (SocketAddr::new(*ip, cfg.tls_port), true)),
            );
        }
        let bound = bind_listeners(&addrs, settings.reactors, cfg)?;
        let local: Vec<SocketAddr> = bound.local.iter().filter(|a| !a.1).map(|a| a.0).collect();
        let local_tls: Vec<SocketAddr> = bound.local.iter().filter(|a| a.1).map(|a| a.0).collect();
        if let Some(a) = local_tls.first() {
            settings.tls_port = a.port();
        }
        let listeners = bound.reactors;
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let mut links = Vec::with_capacity(settings.reactors);
        let mut notices = Vec::with_capacity(settings.reactors);
        for _ in 0..settings.reactors {
            let (link, rx) = Link::new(settings.max_conns).map_err(io_error("epoll"))?;
            links.push(link);
            notices.push(rx);
        }
        let shared = Arc::new(Shared::new(settings, sites, tls, links));
        if let Some(p) = &cfg.pid_file {
            write_pid_file(p).map_err(io_error(&format!("pid file {}", p.display())))?;
        }
        Ok(Server {
            shared,
            listeners,
            local,
            local_tls,
            signals,
            reloader: reloader.unwrap_or_else(|| Reloader::new(Vec::new(), loaded)),
            notices,
            queue_tx,
            queue_rx,
            logs,
            pid_file: cfg.pid_file.clone(),
            reuseport: cfg.reuseport,
        })
    }

    /// The first bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local[0]
    }

    /// Every bound plain-HTTP address, in `--bind` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Every bound HTTPS address, in `--bind` order (none without TLS).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.local_tls
    }

    /// What loading the certificates found worth telling the operator (expiry
    /// near, a key file others can read); also logged.
    pub fn tls_warnings(&self) -> Vec<String> {
        self.shared
            .tls
            .as_ref()
            .map(|t| t.resolver.store().warnings().to_vec())
            .unwrap_or_default()
    }

    /// Worker threads it will run.
    pub fn threads(&self) -> usize {
        self.shared.settings.workers
    }

    /// Reactors it will run (the main thread is reactor 0).
    pub fn reactors(&self) -> usize {
        self.shared.settings.reactors
    }

    /// A handle that stops the server gracefully from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: self.shared.clone(),
        }
    }

    /// Starts the workers and the extra reactors, runs reactor 0 on this thread
    /// until stopped, and waits for the others.
    pub fn run(self) -> io::Result<()> {
        self.log_start();
        let logs = self.logs.map(Arc::new);
        let workers = spawn_workers(&self.shared, &self.queue_rx, logs.as_deref())?;
        drop(self.queue_rx);
        let s = &self.shared.settings;
        let stats = self.shared.stats.clone();
        let outcome = Box::new(move |o| stats.reloads.count(o));
        let (trigger, reload_thread) = self.reloader.start(
            self.shared.sites.clone(),
            s.file_fds,
            s.sites,
            self.shared.tls.clone(),
            outcome,
        )?;
        let control = Control {
            signals: self.signals,
            logs: logs.clone(),
            reload: Some(trigger),
        };
        let parts = self.listeners.into_iter().zip(self.notices).collect();
        let (first, reactors) = start_reactors(&self.shared, parts, control, self.queue_tx)?;
        let result = first.run();
        // Reactor 0 stopping (a signal, a stop request or a fatal error) stops all.
        self.shared.request_stop();
        for r in reactors {
            match r.join() {
                Ok(Err(e)) => log::error!("reactor: {e}"),
                Err(_) => log::error!("a reactor thread panicked"),
                Ok(Ok(())) => {}
            }
        }
        for w in workers {
            let _ = w.join();
        }
        // Reactor 0 held the last trigger: the reload thread ends after any reload
        // it is running.
        if reload_thread.join().is_err() {
            log::error!("the reload thread panicked");
        }
        if let Some(p) = &self.pid_file {
            // After a SIGUSR2 restart the file names the new process: leave it.
            let ours = std::fs::read_to_string(p)
                .is_ok_and(|s| s.trim() == std::process::id().to_string());
            if ours {
                let _ = std::fs::remove_file(p);
            }
        }
        log::info!("stopped");
        if let Some(l) = &logs {
            l.sync();
        }
        result
    }

    fn log_start(&self) {
        let s = &self.shared.settings;
        let sites = self.shared.sites.load();
        log::info!(
            "hearth {} listening on {} root={} threads={} reactors={} max_conns={}{}",
            env!("CARGO_PKG_VERSION"),
            self.local[0],
            sites.default_site().files.root().display(),
            s.workers,
            s.reactors,
            s.max_conns,
            if self.reuseport { " reuseport" } else { "" }
        );
    }
}

/// Starts the worker threads `hearth-w0` … on the queue.
fn spawn_workers(
    shared: &Arc<Shared>,
    queue: &Receiver<Batch>,
    logs: Option<&Logs>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let n = shared.settings.workers;
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let w = Worker::new(shared.clone(), logs.and_then(Logs::access_writer));
        let rx = queue.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("hearth-w{i}"))
                .spawn(move || w.run(rx))?,
        );
    }
    Ok(workers)
}

/// Builds every reactor: reactor 0 (with `control`) is returned to run on this
/// thread, the others are started on threads `hearth-r1` ….
#[allow(clippy::type_complexity)]
fn start_reactors(
    shared: &Arc<Shared>,
    parts: Vec<(Listeners, Receiver<Notice>)>,
    control: Control,
    queue: Sender<Batch>,
) -> io::Result<(Reactor, Vec<JoinHandle<io::Result<()>>>)> {
    let mut parts = parts.into_iter();
    let Some((listeners, notices)) = parts.next() else {
        return Err(io::Error::other("no reactor to run"));
    };
    let first = Reactor::new(
        0,
        shared.clone(),
        listeners,
        Some(control),
        notices,
        queue.clone(),
    )?;
    let mut others = Vec::with_capacity(parts.len());
    for (i, (listeners, notices)) in parts.enumerate() {
        let id = i + 1;
        let r = Reactor::new(id, shared.clone(), listeners, None, notices, queue.clone())?;
        others.push(
            std::thread::Builder::new()
                .name(format!("hearth-r{id}"))
                .spawn(move || r.run())?,
        );
    }
    Ok((first, others))
}

/// Binds `addrs` for `reactors` reactors, adopting the sockets a process
/// restarting on SIGUSR2 handed over (those not configured here are closed).
fn bind_listeners(
    addrs: &[(SocketAddr, bool)],
    reactors: usize,
    cfg: &Config,
) -> Result<Bound, StartError> {
    let mut inherited = crate::driver::upgrade::inherited();
    let opts = listen::Options {
        reactors,
        spread: cfg.accept_spread,
        backlog: cfg.backlog,
        reuseport: cfg.reuseport,
        defer_accept: cfg.defer_accept,
    };
    let bound = listen::bind_all(addrs, &opts, &mut inherited)
        .map_err(|(what, e)| StartError::Io(what, e))?;
    if !inherited.is_empty() {
        log::warn!(
            "{} inherited listening sockets are not configured here; closed",
            inherited.len()
        );
    }
    Ok(bound)
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
        self.shared.request_stop();
    }
}
