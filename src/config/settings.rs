//! Process-level settings derived once from the command line: limits, timeouts,
//! thread counts. What a request is answered from (root, headers) is per site, in
//! `site.rs`, and can be reloaded; these need a restart.

use std::net::IpAddr;

use crate::config::Config;
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
    /// Grace period on stop.
    pub grace_ms: u64,
    /// Wait for EPOLLOUT before the first write of every response.
    pub defer_write: bool,
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

/// Whether `name` is a framing or hop-by-hop header that configuration may not set.
pub fn reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name.trim()))
}

/// Encodes `Name: value` as a header line, refusing malformed names and values and
/// the names in [`reserved_header`].
pub fn header_line(spec: &str) -> Result<Vec<u8>, ConfigError> {
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
    if reserved_header(name) {
        return Err(ConfigError(format!(
            "--header {spec:?}: {name} is set by the server (framing or hop-by-hop header)"
        )));
    }
    Ok(format!("{name}: {value}\r\n").into_bytes())
}

impl Settings {
    /// Validates the configuration and derives the settings.
    pub fn from_config(cfg: &Config, nofile: u64) -> Result<Settings, ConfigError> {
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
            stats_allow,
            workers,
            reactors,
            max_conns,
            file_fds: descriptor_budget(nofile, max_conns, workers),
            grace_ms: cfg.grace * 1000,
            defer_write: cfg.defer_write,
            tls,
            tls_port: cfg.tls_port,
            redirect_https: cfg.redirect_https,
        })
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
        for reserved in [
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
