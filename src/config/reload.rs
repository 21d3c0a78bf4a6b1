//! SIGHUP: read the configuration file again and swap in new sites.
//!
//! Only reactor 0 reloads. What a request is answered from (roots, vhosts, headers,
//! cache-control, CORS) and the log level change for the next request, open
//! keep-alive connections included; a worker planning a response keeps the sites it
//! loaded until it is done. Process-level settings (port, binds, threads, limits)
//! would need new sockets or threads: a change to them is logged and ignored.
//!
//! The caller counts the outcome for the statistics page: `config_generation` grows
//! by one for each configuration that took, `config_reloads_failed` for each that
//! did not, with `config_reload_error` saying why until a later reload succeeds.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::file::{self as config_file, Loaded, SITE_KEYS};
use crate::config::site::Sites;

/// Keys a reload applies although they are not per-site.
const RELOADED: &[&str] = &["log-level", "config", "check"];

/// What a reload needs: the command line and the running process-level values.
#[derive(Debug)]
pub struct Reloader {
    argv: Vec<OsString>,
    file: PathBuf,
    running: Loaded,
}

impl Reloader {
    /// A reloader for a configuration that came from a file (`None` without one).
    pub fn new(argv: Vec<OsString>, loaded: &Loaded) -> Option<Reloader> {
        Some(Reloader {
            argv,
            file: loaded.file.clone()?,
            running: loaded.clone(),
        })
    }

    /// Loads the file again; on success swaps the new sites into `running` (their
    /// file caches sharing `file_fds` descriptors) and sets the log level, on failure
    /// logs why, leaves everything as it was and returns the reason.
    pub fn reload(&self, running: &ArcSwap<Sites>, file_fds: usize) -> Result<(), String> {
        let loaded = config_file::load(&self.argv).map_err(|e| e.to_string());
        let built =
            loaded.and_then(|l| Sites::build(&l, file_fds).map(|s| (l, s)).map_err(|e| e.0));
        let (loaded, sites) = match built {
            Ok(b) => b,
            Err(e) => {
                log::error!(
                    "reload of {} failed, keeping the running configuration: {e}",
                    self.file.display()
                );
                return Err(e);
            }
        };
        for (key, value) in &loaded.values {
            let site_key = SITE_KEYS.contains(&key.as_str()) || RELOADED.contains(&key.as_str());
            if !site_key && self.running.values.get(key) != Some(value) {
                log::warn!("reload: {key} changed; it needs a restart, ignored");
            }
        }
        running.store(Arc::new(sites));
        log::set_max_level(loaded.config.log_level);
        log::info!(
            "configuration reloaded from {} ({} vhosts)",
            self.file.display(),
            loaded.vhosts.len()
        );
        Ok(())
    }
}
