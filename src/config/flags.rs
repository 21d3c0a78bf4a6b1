//! Command-line configuration.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Parser;

use crate::config::access_log::LogFormat;

/// Shown after the flags by `--help`: examples, signals and exit codes.
const AFTER_HELP: &str = "\
Examples:
  hearth                                 serve ./html on http://127.0.0.1:8888
  hearth -p 8080 -r /srv/www             another port and document root
  hearth -p 0 --stats-path /_stats       a free port (printed on stdout), live counters
  hearth --log-level debug --access-log off
  hearth --tls-cert cert.pem --tls-key key.pem   HTTPS on 8443 beside HTTP on 8888

Signals:
  SIGTERM, SIGINT  stop gracefully: stop accepting, close idle connections, let
                   responses in flight finish within --grace SECONDS
  SIGHUP           reopen the log files (after logrotate has moved them),
                   reload --config FILE (roots, vhosts, headers, log level,
                   htpasswd files) and the TLS certificates and keys
  SIGUSR2          start a new process of the binary (its file now) with the same
                   arguments on the same listening sockets; SIGTERM the old one
                   once the new one answers (scripts/restart.sh does both)

Exit codes:
  0  stopped cleanly (or --help, --version)
  1  runtime or operating-system error (port taken, log dir not writable, ...)
  2  bad configuration (unknown flag, bad value, missing document root)";

/// The `--log-level` parser: the level names, listed by `--help` and by the error
/// for a name that is not one of them.
fn level_parser() -> impl TypedValueParser<Value = log::LevelFilter> {
    PossibleValuesParser::new(["off", "error", "warn", "info", "debug", "trace"])
        .try_map(|s| s.parse::<log::LevelFilter>().map_err(|e| e.to_string()))
}

/// An `on|off` switch.
fn on_off() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new(["on", "off"]).map(|s| s == "on")
}

/// The `--threads` parser: a whole number of at least one.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Everything the server can be told on its command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth",
    version,
    about = "Static-file HTTP/1.1 server: epoll reactors + worker pool",
    after_help = AFTER_HELP
)]
pub struct Config {
    /// TCP port to listen on (0 picks a free one; the chosen address is printed).
    #[arg(
        short = 'p',
        long,
        default_value_t = 8888,
        value_name = "PORT",
        help_heading = "Listening"
    )]
    pub port: u16,

    /// Address to bind (repeatable; IPv6 too: `::1`, or `::` for IPv4 and IPv6 at once).
    #[arg(
        long,
        default_value = "0.0.0.0",
        value_name = "ADDR",
        help_heading = "Listening"
    )]
    pub bind: Vec<IpAddr>,

    /// Document root.
    #[arg(
        short = 'r',
        long,
        default_value = "html",
        value_name = "DIR",
        help_heading = "Files"
    )]
    pub root: PathBuf,

    /// Worker threads (default: number of CPUs).
    #[arg(short = 't', long, value_name = "N", value_parser = at_least_one, help_heading = "Limits")]
    pub threads: Option<usize>,

    /// Reactor threads: epoll loops that accept and read connections (default: one
    /// per two CPUs, at least one; the main thread is always reactor 0).
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub reactors: Option<usize>,

    /// Seconds a connection may wait for a complete request, or sit idle between
    /// keep-alive requests, or make no progress reading a response.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub timeout: u64,

    /// Seconds a client has to send a complete request head, however it trickles in.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub header_timeout: u64,

    /// Seconds in-flight responses may take to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub grace: u64,

    /// Maximum open client connections (default: what RLIMIT_NOFILE allows, less a reserve).
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_conns: Option<usize>,

    /// listen(2) backlog.
    #[arg(
        long,
        default_value_t = 4096,
        value_name = "N",
        help_heading = "Listening"
    )]
    pub backlog: i32,

    /// Accept a connection only once its first bytes have arrived (TCP_DEFER_ACCEPT),
    /// waiting up to this many seconds for them; 0 accepts at once. A client that
    /// connects and sends nothing is accepted when the wait is over.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u32).range(0..=3600),
        help_heading = "Listening"
    )]
    pub defer_accept: u32,

    /// Longest request line, in bytes (414 past it).
    #[arg(long, default_value_t = 8 * 1024, value_name = "BYTES", help_heading = "Limits")]
    pub max_uri: usize,

    /// Largest request head, in bytes (431 past it).
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES", help_heading = "Limits")]
    pub max_header: usize,

    /// Largest request body, in bytes (413 past it).
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES", help_heading = "Limits")]
    pub max_body: u64,

    /// How much server.log says.
    #[arg(long, default_value = "info", value_name = "LEVEL", ignore_case = true, value_parser = level_parser(), help_heading = "Logging")]
    pub log_level: log::LevelFilter,

    /// Directory for server.log and access.log.
    #[arg(
        long,
        default_value = "logs",
        value_name = "DIR",
        help_heading = "Logging"
    )]
    pub log_dir: PathBuf,

    /// Turn all logging off (no log files).
    #[arg(short = 'c', long, help_heading = "Logging")]
    pub close_log: bool,

    /// Write server.log from a background thread instead of the caller.
    #[arg(short = 'l', long, help_heading = "Logging")]
    pub log_async: bool,

    /// Access log: `on` (LOG_DIR/access.log), `off`, or a file path. In a
    /// `[[vhost]]`, a value other than the top level's gives the site a log of its
    /// own (its requests go there and not to the main log), or none with `off`.
    #[arg(
        long,
        default_value = "on",
        value_name = "on|off|FILE",
        help_heading = "Logging"
    )]
    pub access_log: String,

    /// Access-log line format: `combined` (the user from basic auth in the third
    /// field) or `json` (one object per line). Per site with its own --access-log.
    #[arg(long, value_enum, default_value_t = LogFormat::Combined, value_name = "FORMAT", help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Ask for a user name and password (HTTP basic authentication) in this realm,
    /// checked against --auth-basic-user-file; `off` turns it off (for a vhost).
    #[arg(long, value_name = "REALM", help_heading = "HTTP")]
    pub auth_basic: Option<String>,

    /// The users and passwords for --auth-basic: an Apache htpasswd file with
    /// bcrypt, apr1 or SHA-1 entries (`htpasswd -B`). Read again on SIGHUP.
    #[arg(long, value_name = "FILE", help_heading = "HTTP")]
    pub auth_basic_user_file: Option<PathBuf>,

    /// Write the process id to this file once listening; removed on clean exit.
    #[arg(long, value_name = "FILE", help_heading = "Operations")]
    pub pid_file: Option<PathBuf>,

    /// Path of the live statistics page (off unless set), e.g. /_stats.
    #[arg(long, value_name = "PATH", help_heading = "Operations")]
    pub stats_path: Option<String>,

    /// Path of the Prometheus metrics (text exposition format; off unless set), e.g.
    /// /metrics. Readable from the same networks as the statistics page.
    #[arg(long, value_name = "PATH", help_heading = "Operations")]
    pub metrics_path: Option<String>,

    /// Networks allowed to read the statistics page and the metrics, as CIDR
    /// (repeatable; loopback always).
    #[arg(long, value_name = "CIDR", help_heading = "Operations")]
    pub stats_allow: Vec<String>,

    /// Liveness path for load balancers; an empty value turns it off.
    #[arg(
        long,
        default_value = "/healthz",
        value_name = "PATH",
        help_heading = "Operations"
    )]
    pub health_path: String,

    /// Open the listening socket with SO_REUSEPORT so several processes share the port.
    #[arg(long, help_heading = "Listening")]
    pub reuseport: bool,

    /// How several reactors share an address: `reuseport` (each reactor has its own
    /// SO_REUSEPORT socket and the kernel spreads connections by a hash) or
    /// `exclusive` (one socket watched by every reactor with EPOLLEXCLUSIVE, which
    /// favours the reactor that went idle last).
    #[arg(
        long,
        default_value = "reuseport",
        value_name = "reuseport|exclusive",
        value_enum,
        help_heading = "Listening"
    )]
    pub accept_spread: AcceptSpread,

    /// Write a response only once epoll reports the socket writable (re-arm for
    /// EPOLLOUT after process()), instead of trying the write at once and re-arming
    /// for EPOLLOUT only when the socket is full.
    #[arg(long, help_heading = "HTTP")]
    pub defer_write: bool,

    /// Serve symbolic links that lead outside the root.
    #[arg(long, help_heading = "Files")]
    pub follow_symlinks: bool,

    /// List directories that have no index.html.
    #[arg(long, help_heading = "Files")]
    pub autoindex: bool,

    /// Send CORS headers allowing this origin (`*` when given without a value).
    #[arg(long, num_args = 0..=1, default_missing_value = "*", value_name = "ORIGIN", help_heading = "HTTP")]
    pub cors: Option<String>,

    /// Cache-Control value for file responses.
    #[arg(long, value_name = "VALUE", help_heading = "HTTP")]
    pub cache_control: Option<String>,

    /// Extra response header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", help_heading = "HTTP")]
    pub headers: Vec<String>,

    /// For GET/HEAD, try these in order, nginx style (space-separated): `$uri`,
    /// `$uri.html`, `$uri/` (the directory's index) or a fixed path; the last item
    /// is a URI served instead (`/index.html` for a single-page app) or `=404`.
    #[arg(long, value_name = "LIST", help_heading = "Files")]
    pub try_files: Option<String>,

    /// Serve the file at PATH (under the root, with its type) as the body of CODE
    /// responses, keeping the status; CODE may be `4xx` or `5xx`, an exact code
    /// wins (repeatable).
    #[arg(long = "error-page", value_name = "CODE=PATH", help_heading = "Files")]
    pub error_pages: Vec<String>,

    /// TOML configuration file (docs/config.md): keys are the long flag names, plus
    /// `[defaults]`, `[[vhost]]`, `[[location]]`, `[[redirect]]` and `[[headers]]`
    /// tables; flags on the command line override it. SIGHUP reloads it.
    #[arg(long, value_name = "FILE", help_heading = "Operations")]
    pub config: Option<PathBuf>,

    /// Validate the flags and the configuration file, print `configuration ok`, exit.
    #[arg(long, help_heading = "Operations")]
    pub check: bool,

    /// Send F.br, F.zst or F.gz (when present and not older than F, see
    /// --precompressed-check) to clients that accept that encoding, in place of F.
    #[arg(long, default_value = "on", value_name = "on|off", value_parser = on_off(), action = clap::ArgAction::Set, help_heading = "Files")]
    pub precompressed: bool,

    /// Skip a precompressed sibling whose modification time is older than its
    /// file's, compared in whole seconds; `off` serves siblings whatever their age.
    #[arg(long, default_value = "on", value_name = "on|off", value_parser = on_off(), action = clap::ArgAction::Set, help_heading = "Files")]
    pub precompressed_check: bool,

    /// Compress responses on the fly (br, zstd or gzip, as the client prefers) for
    /// files of the --compress-types of at least --compress-min bytes that have no
    /// precompressed sibling the client accepts.
    #[arg(long, default_value = "on", value_name = "on|off", value_parser = on_off(), action = clap::ArgAction::Set, help_heading = "Compression")]
    pub compress: bool,

    /// Media types compressed on the fly, comma-separated; `text/*` covers a
    /// top-level type (repeatable).
    #[arg(long, value_name = "TYPES", value_delimiter = ',', default_value = crate::files::compress::DEFAULT_TYPES, help_heading = "Compression")]
    pub compress_types: Vec<String>,

    /// Smallest file compressed on the fly, in bytes.
    #[arg(
        long,
        default_value_t = 1024,
        value_name = "BYTES",
        help_heading = "Compression"
    )]
    pub compress_min: u64,

    /// Memory for compressed variants, shared by all sites (K, M, G suffixes; the
    /// least recently used are dropped past it).
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = size, help_heading = "Compression")]
    pub compress_cache: u64,

    /// Certificate chain for HTTPS (PEM, leaf first, then the chain); with
    /// --tls-key it turns TLS on, served on --tls-port beside plain HTTP on --port.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,

    /// TCP port HTTPS is served on, on every --bind address (0 picks a free one).
    #[arg(
        long,
        default_value_t = 8443,
        value_name = "PORT",
        help_heading = "TLS"
    )]
    pub tls_port: u16,

    /// Answer every request on the plain port with `308 Permanent Redirect` to the
    /// same target over HTTPS.
    #[arg(long, help_heading = "TLS")]
    pub redirect_https: bool,
}

/// A size in bytes with an optional K, M or G suffix (powers of 1024).
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 10),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 20),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of bytes with an optional K, M or G"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// How several reactors share the connections to one address (`--accept-spread`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptSpread {
    /// A `SO_REUSEPORT` socket per reactor: the kernel hashes each connection to
    /// one of them, whether that reactor is busy or not.
    Reuseport,
    /// One socket watched by every reactor with `EPOLLEXCLUSIVE`: a connection
    /// wakes one idle reactor, usually the one that went to sleep last.
    Exclusive,
}
