//! What a request is answered from: a [`Site`] (document root, configured headers,
//! cache-control, CORS, per-path header rules, locations, redirects). The
//! [`Sites`] of one configuration (in `sites.rs`) pick one by `Host`.
//!
//! A location is a `Site` of its own over the same root (the same [`Files`], shared):
//! the site's values with the location's applied. A site without locations or
//! redirects answers exactly as before they existed: no extra lookup, no
//! allocation.

use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::access_log::{LogFormat, SiteLog};
use crate::config::apply;
use crate::config::auth::BasicAuth;
use crate::config::redirect::Redirect;
use crate::config::routes::{ErrorPages, TryFiles};
use crate::config::settings::{header_field, header_line, header_value, ConfigError};
pub use crate::config::spec::PathRule;
use crate::config::spec::{LocationSpec, SiteSpec};
use crate::config::Config;
use crate::files::compress::Policy;
use crate::files::{Files, Lookup};

/// `[[headers]]` rules and their globs as one matcher: a request is matched once
/// against all of them, not once per rule.
#[derive(Debug)]
struct Rules {
    rules: Vec<PathRule>,
    set: GlobSet,
}

/// One site, or one location of a site: where files come from and the headers its
/// responses carry.
#[derive(Debug)]
pub struct Site {
    /// The document root and its cache (shared by the site's locations).
    pub files: Arc<Files>,
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
    rules: Arc<Rules>,
    /// `--try-files`: candidates for GET/HEAD and a fallback.
    pub try_files: Option<TryFiles>,
    /// `--error-page`: files served as the bodies of error responses.
    pub error_pages: ErrorPages,
    /// What is compressed on the fly; `None` with `--compress off`.
    pub compress: Option<Policy>,
    /// Directories without an index are listed.
    pub autoindex: bool,
    /// Precompressed siblings are served.
    pub precompressed: bool,
    /// `[[location]]`s: the normalised prefix (no leading slash) and its answers,
    /// longest prefix first.
    locations: Vec<(String, Site)>,
    /// `[[redirect]]` rules, in file order.
    pub redirects: Vec<Redirect>,
    /// Basic authentication asked of every file request (`auth-basic`).
    pub auth: Option<Arc<BasicAuth>>,
    /// Where its access-log lines go (see [`Sites::build`](crate::config::sites::Sites::build)).
    pub access_log: SiteLog,
    /// The format of its access-log lines.
    pub log_format: LogFormat,
}

impl Site {
    /// Validates the per-site part of `cfg` and opens its root, whose file cache may
    /// hold `fd_budget` open descriptors; `spec` adds the rules, locations and
    /// redirects the file gave it.
    pub fn from_config(
        cfg: &Config,
        spec: &SiteSpec,
        fd_budget: usize,
    ) -> Result<Site, ConfigError> {
        if !cfg.root.is_dir() {
            return Err(ConfigError(format!(
                "root {:?} is not a directory",
                cfg.root
            )));
        }
        // Siblings are looked up when the site or any location may serve them.
        let precompressed = cfg.precompressed
            || spec
                .locations
                .iter()
                .any(|l| l.keys.precompressed.as_ref().is_some_and(|p| p.get_ref().0));
        let files = Files::new(
            &cfg.root,
            cfg.follow_symlinks,
            cfg.autoindex,
            fd_budget,
            precompressed,
        )
        .map(|f| f.with_precompressed_check(cfg.precompressed_check))
        .map_err(|e| ConfigError(format!("root {:?}: {e}", cfg.root)))?;
        let rules = Arc::new(Rules {
            set: rule_set(&spec.rules)?,
            rules: spec.rules.clone(),
        });
        let mut site = Site::scope(cfg, Arc::new(files), rules)?;
        site.redirects = spec.redirects.clone();
        site.auth = basic_auth(cfg)?;
        site.log_format = cfg.log_format;
        for l in &spec.locations {
            let scope = site.location(cfg, l).map_err(|e| {
                let at = SiteSpec {
                    lines: l.lines.clone(),
                    label: format!("location {:?}", l.path),
                    ..SiteSpec::default()
                };
                at.locate(spec.file.as_deref(), e, "location")
            })?;
            site.locations.push((l.path[1..].to_string(), scope));
        }
        site.locations.sort_by_key(|l| std::cmp::Reverse(l.0.len()));
        Ok(site)
    }

    /// The answers `cfg` gives over `files`: headers, CORS, try-files, error pages.
    fn scope(cfg: &Config, files: Arc<Files>, rules: Arc<Rules>) -> Result<Site, ConfigError> {
        let a = answers(cfg, rules)?;
        Ok(Site {
            files,
            extra_headers: a
                .extra
                .iter()
                .flat_map(|(_, l)| l.iter().copied())
                .collect(),
            extra: a.extra,
            cache_control: cfg.cache_control.clone(),
            cors: cfg.cors.clone(),
            vary_origin: cfg.cors.as_deref().is_some_and(|o| o.trim() != "*"),
            rules: a.rules,
            try_files: a.try_files,
            error_pages: a.error_pages,
            compress: cfg.compress.then_some(a.policy),
            autoindex: cfg.autoindex,
            precompressed: cfg.precompressed,
            locations: Vec::new(),
            redirects: Vec::new(),
            auth: None,
            access_log: SiteLog::Main,
            log_format: cfg.log_format,
        })
    }

    /// The answers of location `l` of this site (configured with `cfg`): the site's
    /// values with the location's applied; the same password file is read once.
    fn location(&self, cfg: &Config, l: &LocationSpec) -> Result<Site, ConfigError> {
        let mut lc = cfg.clone();
        apply::site(&mut lc, &l.keys, &std::collections::BTreeSet::new());
        let mut scope = Site::scope(&lc, self.files.clone(), self.rules.clone())?;
        let same =
            lc.auth_basic == cfg.auth_basic && lc.auth_basic_user_file == cfg.auth_basic_user_file;
        scope.auth = if same {
            self.auth.clone()
        } else {
            basic_auth(&lc)?
        };
        scope.log_format = self.log_format;
        Ok(scope)
    }

    /// Whether the site has locations (requests are then matched against them).
    pub fn has_locations(&self) -> bool {
        !self.locations.is_empty()
    }

    /// The answers for the normalised path `rel` (no leading slash): the location
    /// with the longest prefix that `/rel` starts with, else the site itself.
    pub fn locate(&self, rel: &str) -> &Site {
        self.locations
            .iter()
            .find(|(prefix, _)| rel.starts_with(prefix.as_str()))
            .map_or(self, |(_, s)| s)
    }

    /// Resolves a normalised path with this site's (or location's) autoindex.
    pub fn lookup(&self, rel: &str) -> Lookup {
        self.files.lookup_with(rel, self.autoindex)
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
        if !self.rules.rules.is_empty() {
            let rel = rel.trim_end_matches('/');
            // In ascending order: file order, so a later rule wins.
            self.rules.set.matches_into(rel, matched);
        }
        if matched.is_empty() && !(vary && self.vary_origin) {
            out.extend_from_slice(&self.extra_headers);
            return false;
        }
        let ruled = |name: &str| {
            (vary && name == "vary")
                || matched.iter().any(|&j| {
                    self.rules.rules[j]
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
            for (name, line) in &self.rules.rules[i].set {
                let later = matched[k + 1..].iter().any(|&j| {
                    self.rules.rules[j]
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

/// The globs of `rules` as one set, matched by index.
fn rule_set(rules: &[PathRule]) -> Result<GlobSet, ConfigError> {
    let mut set = GlobSetBuilder::new();
    for r in rules {
        set.add(r.glob.clone());
    }
    set.build()
        .map_err(|e| ConfigError(format!("headers: {e}")))
}

/// The basic authentication `cfg` asks for: both keys or neither (`auth-basic =
/// "off"` turns it off, in a location under a protected site say).
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
pub fn vhost_log(v: &Config, main: &Config) -> Result<SiteLog, ConfigError> {
    if main.close_log {
        return Ok(SiteLog::Off);
    }
    let log = SiteLog::configure(&v.access_log, &main.access_log, &main.log_dir)
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

/// What a site's keys parse to.
struct Answers {
    extra: Vec<(String, Vec<u8>)>,
    rules: Arc<Rules>,
    try_files: Option<TryFiles>,
    error_pages: ErrorPages,
    policy: Policy,
}

fn answers(cfg: &Config, rules: Arc<Rules>) -> Result<Answers, ConfigError> {
    let extra = configured_headers(cfg)?;
    if let Some(cc) = &cfg.cache_control {
        header_field("Cache-Control", cc)
            .map_err(|e| ConfigError(format!("--cache-control {cc:?}: {e}")))?;
    }
    Ok(Answers {
        extra,
        rules,
        try_files: cfg.try_files.as_deref().map(TryFiles::parse).transpose()?,
        error_pages: ErrorPages::parse(&cfg.error_pages)?,
        policy: Policy::new(&cfg.compress_types, cfg.compress_min).map_err(ConfigError)?,
    })
}

/// The `--header` lines, nosniff and the CORS headers of `cfg`, by lower-case name.
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
        let line =
            |n: &str, v: &str| (n.to_ascii_lowercase(), format!("{n}: {v}\r\n").into_bytes());
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

/// Checks what a site (or a location) answers with, without opening anything:
/// headers, Cache-Control, CORS, try-files, error pages, compression types.
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    let rules = Arc::new(Rules {
        rules: Vec::new(),
        set: GlobSet::empty(),
    });
    answers(cfg, rules).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let spec = SiteSpec {
            rules,
            ..SiteSpec::default()
        };
        let site = Site::from_config(&cfg, &spec, 16).unwrap();
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
