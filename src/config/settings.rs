//! Process-level settings derived once from the command line: limits, timeouts,
//! thread counts. What a request is answered from (root, headers) is per site, in
//! `site.rs`, and can be reloaded; these need a restart.

use std::net::IpAddr;

use crate::config::Config;
use crate::http::grammar::TCHAR;
use crate::http::request::Limits;

/// Most reactor threads a process runs.
pub const MAX_REACTORS: usize = 64;
/// CPUs per reactor thread in the default layout (see [`default_reactors`]).
const CPUS_PER_REACTOR: usize = 2;

/// The default number of reactors for a host with `cpus` CPUs: one per
/// [`CPUS_PER_REACTOR`], at least one.
pub fn default_reactors(cpus: usize) -> usize {
    cpus.div_ceil(CPUS_PER_REACTOR).clamp(1, MAX_REACTORS)
}

/// Descriptors kept back from `--max-conns` for files being sent, logs and epoll.
const FD_RESERVE: u64 = 64;
/// Descriptors a site holds for as long as it is configured, outside the file cache:
/// its root directory. (The file watcher is one for all sites, in [`FD_RESERVE`].)
pub const SITE_FDS: u64 = 1;

/// Descriptors `sites` sites may hold: twice theirs, since during a reload the
/// running sites and the new ones are both open.
pub fn site_descriptors(sites: usize) -> u64 {
    2 * SITE_FDS * sites as u64
}

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

/// Descriptors of the server's own (listener, epoll, eventfd, signalfd, logs, root).
const OWN_FDS: u64 = 16;
/// The most files the cache keeps open, whatever the limit.
const MAX_CACHED_FDS: u64 = 1024;

/// How many open files the cache may keep, given the descriptor limit: connections
/// come first, then one file in flight per worker and the server's own descriptors;
/// the cache gets half of what is left (the other half covers files still being sent
/// after their entry was evicted).
pub fn descriptor_budget(nofile: u64, max_conns: usize, workers: usize) -> usize {
    let room = nofile.saturating_sub(max_conns as u64 + workers as u64 + OWN_FDS);
    (room / 2).min(MAX_CACHED_FDS) as usize
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
    /// Health path ("" = off).
    pub health_path: String,
    /// Stats path.
    pub stats_path: Option<String>,
    /// Prometheus metrics path.
    pub metrics_path: Option<String>,
    /// Networks allowed to read stats besides loopback.
    pub stats_allow: Vec<Cidr>,
    /// Worker threads.
    pub workers: usize,
    /// Reactor threads (epoll loops), the main thread included.
    pub reactors: usize,
    /// Connection limit.
    pub max_conns: usize,
    /// Open descriptors the file caches of all sites may hold together.
    pub file_fds: usize,
    /// Sites (the default and the vhosts) whose descriptors were budgeted.
    pub sites: usize,
    /// Grace period on stop.
    pub grace_ms: u64,
    /// Wait for EPOLLOUT before the first write of every response.
    pub defer_write: bool,
    /// Bytes of compressed variants kept (`--compress-cache`).
    pub compress_cache: u64,
    /// HTTPS is served (`--tls-cert` and `--tls-key` given).
    pub tls: bool,
    /// The port HTTPS is served on, as bound (the real one when 0 was asked for).
    pub tls_port: u16,
    /// Plain requests get a `308` to the same target over HTTPS.
    pub redirect_https: bool,
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

/// Header names a configured header may not set: the server frames every message
/// itself (a second `Content-Length` or a `Transfer-Encoding` would desynchronise the
/// client), and hop-by-hop fields describe one connection, not the resource.
const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Header names the server sets itself on the responses that need them: the
/// representation (type, coding, range), its validators, `Date`, `Server`, the
/// redirect target, `Allow`, `Vary` and CORS (`--cors`). A configured copy would make
/// a response carry two of them (two ETags, a Content-Encoding on an identity body).
const OWNED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "date",
    "server",
    "location",
    "allow",
    "vary",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// Whether `name` is a framing or hop-by-hop header that configuration may not set.
pub fn reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name.trim()))
}

/// Whether `name` is a header the server sets itself (see [`OWNED_HEADERS`]).
pub fn owned_header(name: &str) -> bool {
    OWNED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name.trim()))
}

/// Encodes `name: value` as a header line. The name must be a token (RFC 9110
/// §5.6.2, so no `:` or space), the value free of control characters, and neither a
/// framing, hop-by-hop or server-owned name; the error is a message without a key.
pub fn header_field(name: &str, value: &str) -> Result<Vec<u8>, String> {
    if name.is_empty() || !name.bytes().all(|c| TCHAR[usize::from(c)]) {
        return Err(format!(
            "{name:?} is not a header name (a token: no spaces or ':')"
        ));
    }
    let value = header_value(value).map_err(|e| format!("{name}: {e}"))?;
    if reserved_header(name) {
        return Err(format!(
            "{name} is set by the server (framing or hop-by-hop header)"
        ));
    }
    if owned_header(name) {
        return Err(format!(
            "{name} is set by the server for each response; it cannot be configured"
        ));
    }
    Ok(format!("{name}: {value}\r\n").into_bytes())
}

/// A header value with the spaces around it trimmed, refused if it holds a control
/// character (CR and LF included, which would start another header).
pub fn header_value(value: &str) -> Result<&str, String> {
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|c| c < 0x20 && c != b'\t' || c == 0x7f) {
        return Err("the value holds a control character".into());
    }
    Ok(value)
}

/// Encodes `Name: value` (a `--header`) as a header line, refusing what
/// [`header_field`] refuses and `Cache-Control`, which `--cache-control` and
/// `[[headers]]` rules set (so a response never carries two).
pub fn header_line(spec: &str) -> Result<Vec<u8>, ConfigError> {
    let (name, value) = spec
        .split_once(':')
        .ok_or_else(|| ConfigError(format!("--header {spec:?}: expected 'Name: value'")))?;
    if name.eq_ignore_ascii_case("cache-control") {
        return Err(ConfigError(format!(
            "--header {spec:?}: set Cache-Control with --cache-control or a [[headers]] rule"
        )));
    }
    header_field(name, value).map_err(|e| ConfigError(format!("--header {spec:?}: {e}")))
}

impl Settings {
    /// Validates the configuration and derives the settings, for `sites` sites (the
    /// default and the vhosts) under a limit of `nofile` descriptors.
    pub fn from_config(cfg: &Config, nofile: u64, sites: usize) -> Result<Settings, ConfigError> {
        let cpus = num_cpus::get();
        let workers = cfg.threads.unwrap_or(cpus).max(1);
        let reactors = match cfg.reactors {
            Some(0) => return Err(ConfigError("--reactors must be at least 1".into())),
            Some(n) if n > MAX_REACTORS => {
                return Err(ConfigError(format!(
                    "--reactors {n}: at most {MAX_REACTORS}"
                )))
            }
            Some(n) => n,
            None => default_reactors(cpus),
        };
        let stats_allow = check_operations(cfg)?;
        // The sites' own descriptors come off the top, so connections filling up
        // never leave a site without one to open a file with.
        let nofile = nofile.saturating_sub(site_descriptors(sites.max(1)));
        let tls = tls_mode(cfg)?;
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
            health_path: cfg.health_path.clone(),
            stats_path: cfg.stats_path.clone().filter(|p| !p.is_empty()),
            metrics_path: cfg.metrics_path.clone().filter(|p| !p.is_empty()),
            stats_allow,
            workers,
            reactors,
            max_conns,
            file_fds: descriptor_budget(nofile, max_conns, workers),
            sites: sites.max(1),
            grace_ms: cfg.grace * 1000,
            defer_write: cfg.defer_write,
            compress_cache: cfg.compress_cache,
            tls,
            tls_port: cfg.tls_port,
            redirect_https: cfg.redirect_https,
        })
    }
}

/// The `--stats-allow` networks, after checking them, the page paths and the head
/// limits.
fn check_operations(cfg: &Config) -> Result<Vec<Cidr>, ConfigError> {
    let stats_allow = cfg
        .stats_allow
        .iter()
        .map(|s| {
            Cidr::parse(s)
                .ok_or_else(|| ConfigError(format!("--stats-allow {s:?}: not an address or CIDR")))
        })
        .collect::<Result<_, _>>()?;
    for (name, p) in [
        ("--health-path", Some(&cfg.health_path)),
        ("--stats-path", cfg.stats_path.as_ref()),
        ("--metrics-path", cfg.metrics_path.as_ref()),
    ] {
        if let Some(p) = p.filter(|p| !p.is_empty()) {
            if !p.starts_with('/') {
                return Err(ConfigError(format!("{name} must start with '/'")));
            }
        }
    }
    if cfg.max_header < 64 {
        return Err(ConfigError(format!(
            "--max-header {}: too small (at least 64)",
            cfg.max_header
        )));
    }
    if cfg.max_uri < 16 {
        return Err(ConfigError(format!(
            "--max-uri {}: too small (at least 16)",
            cfg.max_uri
        )));
    }
    Ok(stats_allow)
}

/// Whether HTTPS is on, refusing half a certificate pair and ports that clash.
fn tls_mode(cfg: &Config) -> Result<bool, ConfigError> {
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(_), Some(_)) => true,
        (None, None) => false,
        _ => {
            return Err(ConfigError(
                "--tls-cert and --tls-key go together: give both or neither".into(),
            ))
        }
    };
    if cfg.redirect_https && !tls {
        return Err(ConfigError(
            "--redirect-https needs --tls-cert and --tls-key".into(),
        ));
    }
    if tls && cfg.tls_port == cfg.port && cfg.port != 0 {
        return Err(ConfigError(format!(
            "--tls-port {} is also --port: HTTP and HTTPS need ports of their own",
            cfg.tls_port
        )));
    }
    Ok(tls)
}

/// What `--check` verifies on this host beyond the values themselves, as start-up
/// would find it: the log directory is a directory (or can be made), the access
/// log's and the pid file's directories exist, and every `--bind` address is one this host has (tried with
/// port 0, so a server already running on the port does not fail the check).
pub fn preflight(cfg: &Config) -> Result<(), ConfigError> {
    if !cfg.close_log && cfg.log_dir.exists() && !cfg.log_dir.is_dir() {
        return Err(ConfigError(format!(
            "--log-dir {:?}: not a directory",
            cfg.log_dir
        )));
    }
    let access = cfg.access_log.as_str();
    if !cfg.close_log && access != "on" && access != "off" {
        let p = std::path::Path::new(access);
        match p.parent() {
            Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => {
                return Err(ConfigError(format!(
                    "--access-log {p:?}: the directory {d:?} does not exist"
                )))
            }
            _ if p.is_dir() => {
                return Err(ConfigError(format!("--access-log {p:?}: is a directory")))
            }
            _ => {}
        }
    }
    if let Some(p) = &cfg.pid_file {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return Err(ConfigError(format!(
                "--pid-file {p:?}: the directory {dir:?} does not exist"
            )));
        }
        if p.is_dir() {
            return Err(ConfigError(format!("--pid-file {p:?}: is a directory")));
        }
    }
    for ip in &cfg.bind {
        if let Err(e) = std::net::TcpListener::bind((*ip, 0)) {
            if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                return Err(ConfigError(format!(
                    "--bind {ip}: this host has no such address"
                )));
            }
            return Err(ConfigError(format!("--bind {ip}: {e}")));
        }
    }
    Ok(())
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
        assert!(header_line("X-A: b: c").unwrap() == b"X-A: b: c\r\n");
        assert!(header_field("X-A: b", "c").is_err());
        assert!(header_field("X A", "c").is_err());
        for reserved in [
            "Content-Type: text/plain",
            "ETag: \"x\"",
            "content-encoding: gzip",
            "Date: x",
            "Content-Range: bytes 0-1/2",
            "Access-Control-Allow-Origin: *",
            "Cache-Control: no-cache",
            "Content-Length: 0",
            "transfer-encoding: chunked",
            "Connection: close",
            "Keep-Alive: timeout=5",
            "Upgrade: h2c",
            "TE: trailers",
        ] {
            assert!(header_line(reserved).is_err(), "{reserved}");
        }
    }

    #[test]
    fn budget_leaves_connections_their_descriptors() {
        assert_eq!(descriptor_budget(400, 334, 2), 24);
        assert_eq!(descriptor_budget(40, 1000, 2), 0);
        assert_eq!(descriptor_budget(1 << 20, 1000, 8), 1024);
    }
}
