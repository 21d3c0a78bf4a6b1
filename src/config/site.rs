//! What a request is answered from: a [`Site`] (document root, configured headers,
//! cache-control, CORS, per-path header rules) and the [`Sites`] of one
//! configuration, the default site plus the `[[vhost]]` sites picked by `Host`.
//!
//! A `Sites` is built whole from a configuration and never changed afterwards; a
//! reload builds a new one and swaps it in (see `Shared::sites`), so a request sees
//! one consistent configuration from start to end.

use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::access_log::{LogFormat, SiteLog};
use crate::config::auth::BasicAuth;

use crate::config::file::Loaded;
pub use crate::config::file::PathRule;
use crate::config::routes::{ErrorPages, TryFiles};
use crate::config::settings::{header_field, header_line, header_value, ConfigError};
use crate::config::Config;
use crate::files::compress::Policy;
use crate::files::Files;

/// One site: where files come from and the headers its responses carry.
#[derive(Debug)]
pub struct Site {
    /// The document root and its cache.
    pub files: Files,
    /// Pre-encoded headers added to every response (`--header`, CORS, nosniff).
    pub extra_headers: Vec<u8>,
    /// The same headers one by one, with their lower-case names, so a `[[headers]]`
    /// rule setting one of them replaces it instead of adding a second.
    extra: Vec<(String, Vec<u8>)>,
    /// Cache-Control for file responses.
    pub cache_control: Option<String>,
    /// CORS origin.
    pub cors: Option<String>,
    /// Responses vary by `Origin` (CORS with an origin other than `*`).
    pub vary_origin: bool,
    /// Per-path header rules, in file order (a later match wins per header name).
    pub rules: Vec<PathRule>,
    /// Their globs as one matcher: a request is matched once against all of them,
    /// not once per rule.
    rule_set: GlobSet,
    /// `--try-files`: candidates for GET/HEAD and a fallback.
    pub try_files: Option<TryFiles>,
    /// `--error-page`: files served as the bodies of error responses.
    pub error_pages: ErrorPages,
    /// What is compressed on the fly; `None` with `--compress off`.
    pub compress: Option<Policy>,
    /// Basic authentication asked of every file request (`--auth-basic`).
    pub auth: Option<Arc<BasicAuth>>,
    /// Where its access-log lines go (see [`Sites::build`]).
    pub access_log: SiteLog,
    /// The format of its access-log lines.
    pub log_format: LogFormat,
}

impl Site {
    /// Validates the per-site part of `cfg` and opens its root, whose file cache may
    /// hold `fd_budget` open descriptors.
    pub fn from_config(
        cfg: &Config,
        rules: Vec<PathRule>,
        fd_budget: usize,
    ) -> Result<Site, ConfigError> {
        let extra = configured_headers(cfg)?;
        if let Some(cc) = &cfg.cache_control {
            header_field("Cache-Control", cc)
                .map_err(|e| ConfigError(format!("--cache-control {cc:?}: {e}")))?;
        }
        if !cfg.root.is_dir() {
            return Err(ConfigError(format!(
                "root {:?} is not a directory",
                cfg.root
            )));
        }
        let try_files = cfg.try_files.as_deref().map(TryFiles::parse).transpose()?;
        let error_pages = ErrorPages::parse(&cfg.error_pages)?;
        let policy = Policy::new(&cfg.compress_types, cfg.compress_min).map_err(ConfigError)?;
        let files = Files::new(
            &cfg.root,
            cfg.follow_symlinks,
            cfg.autoindex,
            fd_budget,
            cfg.precompressed,
        )
        .map(|f| f.with_precompressed_check(cfg.precompressed_check))
        .map_err(|e| ConfigError(format!("root {:?}: {e}", cfg.root)))?;
        Ok(Site {
            files,
            extra_headers: extra.iter().flat_map(|(_, l)| l.iter().copied()).collect(),
            extra,
            cache_control: cfg.cache_control.clone(),
            cors: cfg.cors.clone(),
            vary_origin: cfg.cors.as_deref().is_some_and(|o| o.trim() != "*"),
            rule_set: rule_set(&rules)?,
            rules,
            try_files,
            error_pages,
            compress: cfg.compress.then_some(policy),
            auth: basic_auth(cfg)?,
            access_log: SiteLog::Main,
            log_format: cfg.log_format,
        })
    }

    /// Appends the headers of a file response for the file at `rel` (its path under
    /// the root: the index file for a directory, what try-files found) to `out`: the
    /// configured headers, then the `[[headers]]` lines whose glob matches `rel`. The
    /// last matching rule wins per name, and a rule's header replaces a configured
    /// one of the same name, so no name appears twice. `matched` is reused scratch.
    /// Returns whether a rule set `Cache-Control`, which then replaces
    /// `--cache-control`.
    ///
    /// With `vary`, the response writes its own `Vary` (see [`Site::vary`]) and the
    /// site's `Vary: Origin` is left out here.
    pub fn file_headers(
        &self,
        rel: &str,
        vary: bool,
        matched: &mut Vec<usize>,
        out: &mut Vec<u8>,
    ) -> bool {
        matched.clear();
        if !self.rules.is_empty() {
            let rel = rel.trim_end_matches('/');
            // In ascending order: file order, so a later rule wins.
            self.rule_set.matches_into(rel, matched);
        }
        if matched.is_empty() && !(vary && self.vary_origin) {
            out.extend_from_slice(&self.extra_headers);
            return false;
        }
        let ruled = |name: &str| {
            (vary && name == "vary")
                || matched.iter().any(|&j| {
                    self.rules[j]
                        .set
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name))
                })
        };
        for (name, line) in &self.extra {
            if !ruled(name) {
                out.extend_from_slice(line);
            }
        }
        let mut cache_control = false;
        for (k, &i) in matched.iter().enumerate() {
            for (name, line) in &self.rules[i].set {
                let later = matched[k + 1..].iter().any(|&j| {
                    self.rules[j]
                        .set
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name))
                });
                if !later {
                    out.extend_from_slice(line);
                    cache_control |= name.eq_ignore_ascii_case("cache-control");
                }
            }
        }
        cache_control
    }

    /// The one `Vary` value of a file response whose file has precompressed
    /// siblings: `Accept-Encoding`, with `Origin` when CORS names an origin.
    pub fn vary(&self) -> &'static [u8] {
        if self.vary_origin {
            b"Origin, Accept-Encoding"
        } else {
            b"Accept-Encoding"
        }
    }
}

/// The headers every response of a site configured with `cfg` carries, with their
/// lower-case names: `--header`, nosniff unless a header sets it, CORS.
fn configured_headers(cfg: &Config) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let mut extra: Vec<(String, Vec<u8>)> = Vec::with_capacity(cfg.headers.len() + 4);
    for h in &cfg.headers {
        let line = header_line(h)?;
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if extra.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError(format!(
                "--header {h:?}: {name} is given twice; a response carries one"
            )));
        }
        extra.push((name, line));
    }
    // nosniff unless a --header set X-Content-Type-Options itself.
    if !extra.iter().any(|(n, _)| n == "x-content-type-options") {
        let nosniff = b"X-Content-Type-Options: nosniff\r\n".to_vec();
        extra.insert(0, ("x-content-type-options".into(), nosniff));
    }
    if let Some(origin) = &cfg.cors {
        let bad = |e: String| ConfigError(format!("--cors {origin:?}: {e}"));
        let line = |n: &str, v: &str| {
            let line = format!("{n}: {v}\r\n").into_bytes();
            (n.to_ascii_lowercase(), line)
        };
        let origin = header_value(origin).map_err(bad)?;
        extra.push(line("Access-Control-Allow-Origin", origin));
        extra.push(line(
            "Access-Control-Expose-Headers",
            "Content-Length, Content-Range, ETag, Last-Modified",
        ));
        if origin != "*" {
            // The one Vary of a response that has no other (see `Site::vary`).
            extra.push(line("Vary", "Origin"));
        }
    }
    Ok(extra)
}

/// The basic authentication `cfg` asks for: both keys or neither (`--auth-basic
/// off` turns it off whatever the file says).
fn basic_auth(cfg: &Config) -> Result<Option<Arc<BasicAuth>>, ConfigError> {
    match (cfg.auth_basic.as_deref(), &cfg.auth_basic_user_file) {
        (Some("off"), _) | (None, None) => Ok(None),
        (Some(realm), Some(file)) => BasicAuth::load(file, realm).map(|a| Some(Arc::new(a))),
        (Some(realm), None) => Err(ConfigError(format!(
            "auth-basic {realm:?}: needs auth-basic-user-file"
        ))),
        (None, Some(file)) => Err(ConfigError(format!(
            "auth-basic-user-file {}: needs auth-basic = \"Realm\" (or \"off\")",
            file.display()
        ))),
    }
}

/// Where the access-log lines of a vhost configured with `v` go, when the top-level
/// configuration is `main`; a vhost writing to the main log uses its format.
fn vhost_log(v: &Config, main: &Config) -> Result<SiteLog, ConfigError> {
    if main.close_log {
        return Ok(SiteLog::Off);
    }
    let log = SiteLog::configure(&v.access_log, &main.access_log, &v.log_dir)
        .map_err(|e| ConfigError(format!("access-log {:?}: {e}", v.access_log)))?;
    if matches!(log, SiteLog::Main) && v.log_format != main.log_format {
        return Err(ConfigError(format!(
            "log-format {}: the vhost writes to the main access log, in its format; \
             give it an access-log of its own",
            v.log_format
        )));
    }
    Ok(log)
}

/// The globs of `rules` as one set, matched by index.
fn rule_set(rules: &[PathRule]) -> Result<GlobSet, ConfigError> {
    let mut set = GlobSetBuilder::new();
    for r in rules {
        set.add(r.glob.clone());
    }
    set.build()
        .map_err(|e| ConfigError(format!("headers: {e}")))
}

/// The sites of one configuration: the default and the virtual hosts.
#[derive(Debug)]
pub struct Sites {
    default: Site,
    /// Lower-case host names (no port) and their sites, in file order.
    vhosts: Vec<(String, Site)>,
}

impl Sites {
    /// Sites from a default and `(host, site)` pairs; a host named twice is refused.
    pub fn new(default: Site, vhosts: Vec<(String, Site)>) -> Result<Sites, ConfigError> {
        let mut named: Vec<(String, Site)> = Vec::with_capacity(vhosts.len());
        for (host, site) in vhosts {
            let host = host.to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ' ']) {
                return Err(ConfigError(format!(
                    "vhost host {host:?} is not a host name"
                )));
            }
            if named.iter().any(|(h, _)| *h == host) {
                return Err(ConfigError(format!("vhost {host:?} is given twice")));
            }
            named.push((host, site));
        }
        Ok(Sites {
            default,
            vhosts: named,
        })
    }

    /// The sites of a loaded configuration: every root opened, every header checked;
    /// their file caches share `fd_budget` open descriptors.
    pub fn build(loaded: &Loaded, fd_budget: usize) -> Result<Sites, ConfigError> {
        let fd_budget = fd_budget / (1 + loaded.vhosts.len());
        let default = Site::from_config(&loaded.config, loaded.rules.clone(), fd_budget)
            .map_err(|e| loaded.locate(e))?;
        let mut vhosts = Vec::with_capacity(loaded.vhosts.len());
        for v in &loaded.vhosts {
            let mut site = Site::from_config(&v.config, v.rules.clone(), fd_budget)
                .map_err(|e| loaded.locate_vhost(v, e))?;
            site.access_log =
                vhost_log(&v.config, &loaded.config).map_err(|e| loaded.locate_vhost(v, e))?;
            vhosts.push((v.host.clone(), site));
        }
        Sites::new(default, vhosts)
    }

    /// The site a request with this `Host` value is answered from: the vhost whose
    /// name matches case-insensitively, port ignored, else the default.
    pub fn pick(&self, host: Option<&str>) -> &Site {
        let Some(host) = host.filter(|_| !self.vhosts.is_empty()) else {
            return &self.default;
        };
        // A fully qualified name with its root dot names the same site, as in nginx.
        let name = host_name(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        self.vhosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map_or(&self.default, |(_, s)| s)
    }

    /// Whether any site's root is no longer the directory its configured path
    /// names (see [`Files::root_moved`]).
    pub fn roots_moved(&self) -> bool {
        self.all().any(|s| s.files.root_moved())
    }

    /// What every configured root path names now (see
    /// [`Files::configured_identity`]), to tell one failed rebuild from the next.
    pub fn root_identities(&self) -> Vec<Option<(u64, u64)>> {
        self.all().map(|s| s.files.configured_identity()).collect()
    }

    /// The default site, then the vhosts.
    fn all(&self) -> impl Iterator<Item = &Site> {
        std::iter::once(&self.default).chain(self.vhosts.iter().map(|(_, s)| s))
    }

    /// Reopens the access logs of the sites that have their own (SIGHUP).
    pub fn reopen_logs(&self) {
        for s in self.all() {
            s.access_log.reopen();
        }
    }

    /// Sites in all, the default included.
    pub fn count(&self) -> usize {
        1 + self.vhosts.len()
    }

    /// The default site.
    pub fn default_site(&self) -> &Site {
        &self.default
    }

    /// The virtual host names, in file order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.vhosts.iter().map(|(h, _)| h.as_str())
    }
}

/// The name part of a `Host` value: `a.example:80` -> `a.example`, `[::1]:80` -> `::1`.
pub fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.example"), "a.example");
        assert_eq!(host_name("a.example:8080"), "a.example");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }

    #[test]
    fn rules_last_match_wins_per_name() {
        let h = |n: &str, v: &str| (n.to_string(), v.to_string());
        let rules = vec![
            PathRule::new("/**", &[h("Cache-Control", "no-cache"), h("X-A", "1")]).unwrap(),
            PathRule::new("/assets/**", &[h("cache-control", "max-age=60")]).unwrap(),
            PathRule::new("/*.html", &[h("X-B", "2")]).unwrap(),
        ];
        let root = tempfile::tempdir().unwrap();
        let cfg = <Config as clap::Parser>::parse_from([
            "hearth",
            "--root",
            root.path().to_str().unwrap(),
        ]);
        let site = Site::from_config(&cfg, rules, 16).unwrap();
        let (mut m, mut out) = (Vec::new(), Vec::new());
        let nosniff = "X-Content-Type-Options: nosniff\r\n";
        assert!(site.file_headers("assets/app.js", false, &mut m, &mut out));
        let want = format!("{nosniff}X-A: 1\r\ncache-control: max-age=60\r\n");
        assert_eq!(String::from_utf8_lossy(&out), want);
        out.clear();
        assert!(site.file_headers("index.html", false, &mut m, &mut out));
        let want = format!("{nosniff}Cache-Control: no-cache\r\nX-A: 1\r\nX-B: 2\r\n");
        assert_eq!(String::from_utf8_lossy(&out), want);
        out.clear();
        // `*` does not cross a slash.
        site.file_headers("sub/index.html", false, &mut m, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("X-B"));
        assert!(PathRule::new("/x", &[h("Connection", "close")]).is_err());
        assert!(PathRule::new("x/**", &[]).is_err());
    }
}
