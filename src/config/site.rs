//! What a request is answered from: a [`Site`] (document root, configured headers,
//! cache-control, CORS, per-path header rules) and the [`Sites`] of one
//! configuration, the default site plus the `[[vhost]]` sites picked by `Host`.
//!
//! A `Sites` is built whole from a configuration and never changed afterwards; a
//! reload builds a new one and swaps it in (see `Shared::sites`), so a request sees
//! one consistent configuration from start to end.

use crate::config::file::Loaded;
pub use crate::config::file::PathRule;
use crate::config::routes::{ErrorPages, TryFiles};
use crate::config::settings::{header_line, ConfigError};
use crate::config::Config;
use crate::files::Files;

/// One site: where files come from and the headers its responses carry.
#[derive(Debug)]
pub struct Site {
    /// The document root and its cache.
    pub files: Files,
    /// Pre-encoded headers added to every response (`--header`, CORS, nosniff).
    pub extra_headers: Vec<u8>,
    /// Cache-Control for file responses.
    pub cache_control: Option<String>,
    /// CORS origin.
    pub cors: Option<String>,
    /// Per-path header rules, in file order (a later match wins per header name).
    pub rules: Vec<PathRule>,
    /// `--try-files`: candidates for GET/HEAD and a fallback.
    pub try_files: Option<TryFiles>,
    /// `--error-page`: files served as the bodies of error responses.
    pub error_pages: ErrorPages,
}

impl Site {
    /// Validates the per-site part of `cfg` and opens its root, whose file cache may
    /// hold `fd_budget` open descriptors.
    pub fn from_config(
        cfg: &Config,
        rules: Vec<PathRule>,
        fd_budget: usize,
    ) -> Result<Site, ConfigError> {
        let mut extra = b"X-Content-Type-Options: nosniff\r\n".to_vec();
        for h in &cfg.headers {
            extra.extend_from_slice(&header_line(h)?);
        }
        if let Some(origin) = &cfg.cors {
            extra.extend_from_slice(&header_line(&format!(
                "Access-Control-Allow-Origin: {origin}"
            ))?);
            extra.extend_from_slice(b"Access-Control-Expose-Headers: Content-Length, Content-Range, ETag, Last-Modified\r\n");
            if origin != "*" {
                extra.extend_from_slice(b"Vary: Origin\r\n");
            }
        }
        if let Some(cc) = &cfg.cache_control {
            header_line(&format!("Cache-Control: {cc}"))?;
        }
        if !cfg.root.is_dir() {
            return Err(ConfigError(format!(
                "root {:?} is not a directory",
                cfg.root
            )));
        }
        let try_files = cfg.try_files.as_deref().map(TryFiles::parse).transpose()?;
        let error_pages = ErrorPages::parse(&cfg.error_pages)?;
        let files = Files::new(
            &cfg.root,
            cfg.follow_symlinks,
            cfg.autoindex,
            fd_budget,
            cfg.precompressed,
        )
        .map_err(|e| ConfigError(format!("root {:?}: {e}", cfg.root)))?;
        Ok(Site {
            files,
            extra_headers: extra,
            cache_control: cfg.cache_control.clone(),
            cors: cfg.cors.clone(),
            rules,
            try_files,
            error_pages,
        })
    }

    /// Appends the `[[headers]]` lines for the normalised path `rel` to `out` (the
    /// last matching rule wins per name); `matched` is reused scratch. Returns
    /// whether a rule set `Cache-Control`, which then replaces `--cache-control`.
    pub fn path_headers(&self, rel: &str, matched: &mut Vec<usize>, out: &mut Vec<u8>) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        matched.clear();
        let rel = rel.trim_end_matches('/');
        matched.extend((0..self.rules.len()).filter(|&i| self.rules[i].glob.is_match(rel)));
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
            let site = Site::from_config(&v.config, v.rules.clone(), fd_budget).map_err(|e| {
                let file = loaded.file.as_deref().unwrap_or(std::path::Path::new("-"));
                ConfigError(format!(
                    "{}:{}: vhost {:?}: {e}",
                    file.display(),
                    v.line,
                    v.host
                ))
            })?;
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
        let name = host_name(host);
        self.vhosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map_or(&self.default, |(_, s)| s)
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
        assert!(site.path_headers("assets/app.js", &mut m, &mut out));
        assert_eq!(out, b"X-A: 1\r\ncache-control: max-age=60\r\n");
        out.clear();
        assert!(site.path_headers("index.html", &mut m, &mut out));
        assert_eq!(out, b"Cache-Control: no-cache\r\nX-A: 1\r\nX-B: 2\r\n");
        out.clear();
        // `*` does not cross a slash.
        site.path_headers("sub/index.html", &mut m, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("X-B"));
        assert!(PathRule::new("/x", &[h("Connection", "close")]).is_err());
        assert!(PathRule::new("x/**", &[]).is_err());
    }
}
