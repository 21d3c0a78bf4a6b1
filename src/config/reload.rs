//! Reloading what requests are answered from, on a thread of its own
//! (`hearth-reload`), so building a large configuration never delays the reactors.
//!
//! It reloads on SIGHUP (reactor 0 only passes the signal on): with `--config`, the
//! file is read again; without one, the running configuration is built again. Either
//! way every root is resolved anew, so a root given as a symbolic link follows the
//! link's new target. Once a second it also checks that each root held open is still
//! what its configured path names, and rebuilds when one was deleted, moved away or
//! switched (the deploy pattern: a `current` link switched from one release to the
//! next is followed within a second or two, SIGHUP or not).
//!
//! What a request is answered from (roots, vhosts, headers, cache-control, CORS) and
//! the log level change for the next request, open keep-alive connections included;
//! the TLS certificates and keys are loaded again for new handshakes (a certificate
//! that fails to load keeps the running ones, and is reported once, by file name);
//! a worker planning a response keeps the sites it loaded until it is done.
//! Process-level settings (port, binds, threads, limits) would need new sockets or
//! threads: a change to them is logged and ignored.
//!
//! Each SIGHUP's outcome goes to the callback the driver gives [`Reloader::start`],
//! which counts it for the statistics page: `config_generation` grows by one for
//! each configuration that took, `config_reloads_failed` for each that did not, with
//! `config_reload_error` saying why until a later reload succeeds.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::apply;
use crate::config::file::{self as config_file, Loaded};
use crate::config::sites::Sites;
use crate::config::tls::TlsSetup;

/// How often the roots are checked for having moved.
const ROOT_CHECK: Duration = Duration::from_secs(1);

/// What a reload needs: the command line, the configuration the sites were last
/// built from, and the process-level values the server started with.
#[derive(Debug)]
pub struct Reloader {
    argv: Vec<OsString>,
    /// The configuration file, when it is read again on SIGHUP.
    file: Option<PathBuf>,
    /// The configuration of the running sites.
    current: Loaded,
    /// Every flag's values at start, to tell which process-level ones changed.
    started: Loaded,
    /// Root identities when an automatic rebuild last failed: not retried (and
    /// not logged again) until one of them changes.
    failed: Option<Vec<Option<(u64, u64)>>>,
}

/// Told the outcome of each SIGHUP reload: `Ok`, or the reason it failed.
pub type Outcome = Box<dyn Fn(Result<(), String>) + Send>;

/// Asks the reload thread to reload; dropping every trigger ends the thread.
#[derive(Debug, Clone)]
pub struct Trigger(Sender<()>);

impl Trigger {
    /// Asks for a reload (SIGHUP). Returns at once; requests made while a reload
    /// runs are served by one more reload.
    pub fn reload(&self) {
        let _ = self.0.try_send(());
    }
}

impl Reloader {
    /// A reloader for `loaded`, which came from `argv` (the file is read again only
    /// when `argv` names it).
    pub fn new(argv: Vec<OsString>, loaded: &Loaded) -> Reloader {
        let file = loaded.file.clone().filter(|_| !argv.is_empty());
        Reloader {
            argv,
            file,
            current: loaded.clone(),
            started: loaded.clone(),
            failed: None,
        }
    }

    /// Starts the reload thread, which swaps new sites into `running` and new
    /// certificates into `tls` (when HTTPS is on); it runs until every [`Trigger`]
    /// is dropped. The file caches of all sites share `file_fds` descriptors, and
    /// descriptors were set aside for `budgeted` sites.
    /// `outcome` hears how each SIGHUP reload ended.
    pub fn start(
        self,
        running: Arc<ArcSwap<Sites>>,
        file_fds: usize,
        budgeted: usize,
        tls: Option<Arc<TlsSetup>>,
        outcome: Outcome,
    ) -> io::Result<(Trigger, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut state = Running {
            reloader: self,
            sites: running,
            file_fds,
            budgeted,
            outcome,
            tls,
        };
        let thread = std::thread::Builder::new()
            .name("hearth-reload".into())
            .spawn(move || {
                // Building sites is background work: the reactors and workers come
                // first when the CPUs are busy.
                crate::sys::lower_thread_priority();
                state.run(&rx)
            })?;
        Ok((Trigger(tx), thread))
    }
}

/// The reload thread's state: the reloader and where the sites it builds go.
struct Running {
    reloader: Reloader,
    sites: Arc<ArcSwap<Sites>>,
    file_fds: usize,
    budgeted: usize,
    outcome: Outcome,
    tls: Option<Arc<TlsSetup>>,
}

impl Running {
    fn run(&mut self, rx: &Receiver<()>) {
        loop {
            match rx.recv_timeout(ROOT_CHECK) {
                Ok(()) => {
                    let outcome = self.reload();
                    (self.outcome)(outcome);
                }
                Err(RecvTimeoutError::Timeout) => self.check_roots(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Rebuilds the running configuration when a root moved (see the module docs).
    fn check_roots(&mut self) {
        let sites = self.sites.load();
        let r = &mut self.reloader;
        if !sites.roots_moved() {
            r.failed = None;
            return;
        }
        let now = sites.root_identities();
        if r.failed.as_ref() == Some(&now) {
            return;
        }
        drop(sites);
        match Sites::build(&r.current, self.file_fds) {
            Ok(sites) => {
                r.failed = None;
                retire(self.sites.swap(Arc::new(sites)));
                log::info!("a document root moved; roots resolved again");
            }
            Err(e) => {
                r.failed = Some(now);
                r.report(&format!(
                    "a document root moved, and the sites could not be rebuilt \
                     (keeping the running ones): {e}"
                ));
            }
        }
    }

    /// Loads the configuration again (the file, or the running one) and builds its
    /// sites, resolving every root anew; on success swaps them in with the log
    /// level, on failure reports why, leaves everything as it was and returns the
    /// reason.
    fn reload(&mut self) -> Result<(), String> {
        let r = &mut self.reloader;
        let loaded = match &r.file {
            Some(_) => config_file::load(&r.argv).map_err(|e| e.to_string()),
            None => Ok(r.current.clone()),
        };
        let built = loaded.and_then(|l| {
            Sites::build(&l, self.file_fds)
                .map(|s| (l, s))
                .map_err(|e| e.0)
        });
        let (loaded, sites) = match built {
            Ok(b) => b,
            Err(e) => {
                let what = match &r.file {
                    Some(f) => format!("reload of {}", f.display()),
                    None => "reload".to_string(),
                };
                r.report(&format!(
                    "{what} failed, keeping the running configuration: {e}"
                ));
                // The certificate files named before may have been renewed.
                if let Some(tls) = &self.tls {
                    tls.reload(None);
                }
                return Err(e);
            }
        };
        if let Some(tls) = &self.tls {
            tls.reload(Some(&loaded));
        }
        for key in apply::process_changes(&r.started.config, &loaded.config) {
            log::warn!("reload: {key} changed; it needs a restart, ignored");
        }
        if sites.count() > self.budgeted {
            log::warn!(
                "reload: {} sites, descriptors were set aside for {} at start; \
                 restart to set aside enough for all",
                sites.count(),
                self.budgeted
            );
        }
        retire(self.sites.swap(Arc::new(sites)));
        log::set_max_level(loaded.config.log_level);
        match &r.file {
            Some(f) => log::info!(
                "configuration reloaded from {} ({} vhosts)",
                f.display(),
                loaded.vhosts.len()
            ),
            None => log::info!("configuration reloaded; roots resolved again"),
        }
        r.failed = None;
        r.current = loaded;
        Ok(())
    }
}

impl Reloader {
    /// Logs an error; without log files (`--close-log`) it goes to stderr as well,
    /// so a failed reload always leaves a trace.
    fn report(&self, msg: &str) {
        log::error!("{msg}");
        if self.started.config.close_log {
            eprintln!("hearth: {msg}");
        }
    }
}

/// Frees the sites a reload replaced here rather than on a worker: dropping a large
/// configuration (thousands of compiled globs) takes time that must not fall on a
/// request. Waits, briefly, for the workers still planning a response with them.
fn retire(old: Arc<Sites>) {
    for _ in 0..200 {
        if Arc::strong_count(&old) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(old);
}
