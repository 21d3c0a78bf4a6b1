//! SIGHUP: read the configuration file again and swap in new sites.
//!
//! Only reactor 0 reloads. What a request is answered from (roots, vhosts, headers,
//! cache-control, CORS) and the log level change for the next request, open
//! keep-alive connections included; a worker planning a response keeps the sites it
//! loaded until it is done. Process-level settings (port, binds, threads, limits)
//! would need new sockets or threads: a change to them is logged and ignored.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::file::{self as config_file, Loaded, SITE_KEYS};
use crate::config::site::Sites;
use crate::config::tls::TlsSetup;

/// Keys a reload applies although they are not per-site.
const RELOADED: &[&str] = &["log-level", "config", "check", "tls-cert", "tls-key"];

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
    /// file caches sharing `file_fds` descriptors), sets the log level and reloads
    /// the TLS certificates the file names into `tls`; on failure logs why and
    /// leaves everything as it was (the certificate files named before are still
    /// loaded again, since they may have been renewed).
    pub fn reload(&self, running: &ArcSwap<Sites>, file_fds: usize, tls: Option<&TlsSetup>) {
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
                if let Some(tls) = tls {
                    tls.reload(None);
                }
                return;
            }
        };
        if let Some(tls) = tls {
            tls.reload(Some(&loaded));
        }
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
    }
}
