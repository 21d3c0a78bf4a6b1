//! Where a site's access-log lines go and in what format: `--log-format` and a
//! per-site `access-log = "PATH"`. The files are opened when the sites are built
//! (so a path that cannot be written is a configuration error at `--check`, start
//! and reload); the writing itself is the log thread's (`obs::logging`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// The format of access-log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// The combined log format (Apache, nginx), the user from basic auth included.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
        })
    }
}

/// A log file opened for appending, which can be reopened after rotation.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating it if need be) `path` for appending.
    pub fn open(path: PathBuf) -> io::Result<LogFile> {
        let file = open_append(&path)?;
        Ok(LogFile {
            path,
            file: Mutex::new(file),
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (SIGHUP, after logrotate moved the file away); on
    /// failure the file open so far stays in use.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(f) => *self.file.lock() = f,
            Err(e) => log::error!("reopen {}: {e}", self.path.display()),
        }
    }

    /// Appends `bytes`.
    pub fn write_all(&self, bytes: &[u8]) {
        // Nowhere to report a failed log write; the next write tries again.
        let _ = self.file.lock().write_all(bytes);
    }
}

/// Where the access-log lines of a site's requests go.
#[derive(Debug, Clone, Default)]
pub enum SiteLog {
    /// The main access log (`--access-log` at the top level), if it is on.
    #[default]
    Main,
    /// Nowhere (`access-log = "off"` for this site).
    Off,
    /// A file of the site's own, and not the main log.
    Own(Arc<LogFile>),
}

impl SiteLog {
    /// The log of a site configured with `access_log` (`on`, `off` or a path) when
    /// the main log is `main` (the same values): the main one when they are the
    /// same, else nothing or a file of the site's own, opened here.
    pub fn configure(access_log: &str, main: &str, log_dir: &Path) -> io::Result<SiteLog> {
        if access_log == main {
            return Ok(SiteLog::Main);
        }
        let path = match access_log {
            "off" => return Ok(SiteLog::Off),
            "on" => log_dir.join("access.log"),
            path => PathBuf::from(path),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(SiteLog::Own(Arc::new(LogFile::open(path)?)))
    }

    /// Reopens the site's own file, if it has one.
    pub fn reopen(&self) {
        if let SiteLog::Own(f) = self {
            f.reopen();
        }
    }
}
