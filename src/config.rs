//! Command-line configuration.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// Everything the server can be told on its command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth",
    version,
    about = "Static-file HTTP/1.1 server: epoll reactor + worker pool"
)]
pub struct Config {
    /// TCP port to listen on (0 picks a free one; the chosen address is printed).
    #[arg(short = 'p', long, default_value_t = 8888)]
    pub port: u16,

    /// Address to bind (repeatable; IPv6 too: `::1`, or `::` for IPv4 and IPv6 at once).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: Vec<IpAddr>,

    /// Document root.
    #[arg(short = 'r', long, default_value = "html")]
    pub root: PathBuf,

    /// Worker threads (default: number of CPUs).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,

    /// Reactor threads: epoll loops that accept and read connections (default: one
    /// per four CPUs, at least one; the main thread is always reactor 0).
    #[arg(long)]
    pub reactors: Option<usize>,

    /// Seconds a connection may wait for a complete request, or sit idle between
    /// keep-alive requests, or make no progress reading a response.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,

    /// Seconds a client has to send a complete request head, however it trickles in.
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds in-flight responses may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 10)]
    pub grace: u64,

    /// Maximum open client connections (default: what RLIMIT_NOFILE allows, less a reserve).
    #[arg(long)]
    pub max_conns: Option<usize>,

    /// listen(2) backlog.
    #[arg(long, default_value_t = 4096)]
    pub backlog: i32,

    /// Longest request line, in bytes (414 past it).
    #[arg(long, default_value_t = 8 * 1024)]
    pub max_uri: usize,

    /// Largest request head, in bytes (431 past it).
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_header: usize,

    /// Largest request body, in bytes (413 past it).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: u64,

    /// Log level: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: log::LevelFilter,

    /// Directory for server.log and access.log.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,

    /// Turn all logging off (no log files).
    #[arg(short = 'c', long)]
    pub close_log: bool,

    /// Write server.log from a background thread instead of the caller.
    #[arg(short = 'l', long)]
    pub log_async: bool,

    /// Access log: `on` (LOG_DIR/access.log), `off`, or a file path.
    #[arg(long, default_value = "on")]
    pub access_log: String,

    /// Write the process id to this file once listening; removed on clean exit.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,

    /// Path of the live statistics page (off unless set), e.g. /_stats.
    #[arg(long)]
    pub stats_path: Option<String>,

    /// Networks allowed to read the statistics page, as CIDR (repeatable; loopback always).
    #[arg(long)]
    pub stats_allow: Vec<String>,

    /// Liveness path for load balancers; an empty value turns it off.
    #[arg(long, default_value = "/healthz")]
    pub health_path: String,

    /// Open the listening socket with SO_REUSEPORT so several processes share the port.
    #[arg(long)]
    pub reuseport: bool,

    /// With several reactors, give each its own SO_REUSEPORT listening socket (the
    /// kernel hashes connections to them) instead of one socket watched by all with
    /// EPOLLEXCLUSIVE. For comparing the two.
    #[arg(long, hide = true)]
    pub accept_reuseport: bool,

    /// Write a response only once epoll reports the socket writable (re-arm for
    /// EPOLLOUT after process()), instead of trying the write at once and re-arming
    /// for EPOLLOUT only when the socket is full.
    #[arg(long)]
    pub defer_write: bool,

    /// Serve symbolic links that lead outside the root.
    #[arg(long)]
    pub follow_symlinks: bool,

    /// List directories that have no index.html.
    #[arg(long)]
    pub autoindex: bool,

    /// Send CORS headers allowing this origin (`*` when given without a value).
    #[arg(long, num_args = 0..=1, default_missing_value = "*")]
    pub cors: Option<String>,

    /// Cache-Control value for file responses.
    #[arg(long)]
    pub cache_control: Option<String>,

    /// Extra response header, `Name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,

    /// TOML configuration file: keys are the long flag names, plus `[[vhost]]` and
    /// `[[headers]]` tables; flags on the command line override it. SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the flags and the configuration file, print `configuration ok`, exit.
    #[arg(long)]
    pub check: bool,
}
