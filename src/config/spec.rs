//! What the file says about one site once read and checked, before anything is
//! opened: its `[[headers]]` rules, `[[location]]` tables and `[[redirect]]` rules,
//! and where each of its keys was (for errors found when the site is built).
//! Also the checks of the names a `[[vhost]]` answers to.

use std::collections::BTreeMap;
use std::path::Path;

use globset::Glob;

use crate::config::keys::SiteKeys;
use crate::config::redirect::Redirect;
use crate::config::settings::{header_field, ConfigError};

/// Headers added to responses whose path matches a glob (`[[headers]]`).
#[derive(Debug, Clone)]
pub struct PathRule {
    /// Matches the normalised path without its leading slash (`assets/app.js`).
    pub glob: Glob,
    /// `(name, encoded "Name: value\r\n" line)` in the order given.
    pub set: Vec<(String, Vec<u8>)>,
}

impl PathRule {
    /// A rule for `pattern` (which starts with `/`) setting `headers`; refuses
    /// malformed globs and the headers [`header_field`] refuses (framing, hop-by-hop,
    /// server-owned, names that are not tokens).
    pub fn new(pattern: &str, headers: &[(String, String)]) -> Result<PathRule, ConfigError> {
        let Some(rel) = pattern.strip_prefix('/') else {
            return Err(ConfigError(format!("path {pattern:?} must start with '/'")));
        };
        // `*` stays inside one segment and `**` crosses them, as in .gitignore.
        let glob = globset::GlobBuilder::new(rel)
            .literal_separator(true)
            .build()
            .map_err(|e| ConfigError(format!("path {pattern:?}: {e}")))?;
        let mut set: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len());
        for (n, v) in headers {
            let line = header_field(n, v).map_err(ConfigError)?;
            if set.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)) {
                return Err(ConfigError(format!("{n} is set twice in one rule")));
            }
            set.push((n.clone(), line));
        }
        Ok(PathRule { glob, set })
    }
}

/// One `[[location]]` table.
#[derive(Debug, Clone)]
pub struct LocationSpec {
    /// The prefix as written (`/assets/`).
    pub path: String,
    /// The keys it sets (only those of [`crate::config::keys::LOCATION_KEYS`]).
    pub keys: SiteKeys,
    /// Where its keys are, by name, and the table itself (`location`).
    pub lines: BTreeMap<String, usize>,
}

impl LocationSpec {
    /// The prefix a location path stands for, refusing what could never match a
    /// normalised request path.
    pub fn check_path(path: &str) -> Result<(), String> {
        if !path.starts_with('/') {
            return Err(format!("{path:?}: expected a path starting with '/'"));
        }
        if path.contains(['?', '#', '%', '\\']) || path.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(format!(
                "{path:?}: a plain path prefix (no query, escapes or control characters)"
            ));
        }
        if path.split('/').any(|s| s == "." || s == "..") || path.contains("//") {
            return Err(format!(
                "{path:?}: requests are matched normalised: no '.', '..' or '//'"
            ));
        }
        Ok(())
    }
}

/// One site as the file describes it (the default site or a `[[vhost]]`).
#[derive(Debug, Clone, Default)]
pub struct SiteSpec {
    /// `[[headers]]` rules: the `[defaults]` ones, then the site's own.
    pub rules: Vec<PathRule>,
    /// `[[location]]` tables, in file order.
    pub locations: Vec<LocationSpec>,
    /// `[[redirect]]` rules, in file order.
    pub redirects: Vec<Redirect>,
    /// Where each key the site has was set (its own, else `[defaults]`).
    pub lines: BTreeMap<String, usize>,
    /// The configuration file, for errors found when the site is built.
    pub file: Option<std::path::PathBuf>,
    /// What the site is called in errors (`vhost "a.example"`); empty for the
    /// default site.
    pub label: String,
}

impl SiteSpec {
    /// Adds the file name, line and key to an error found while building this site
    /// (a bad header value, a missing root): the line of the key the message names
    /// (`--try-files ...`, `root ...`), else of `fallback`.
    pub fn locate(&self, file: Option<&Path>, e: ConfigError, fallback: &str) -> ConfigError {
        let Some(file) = file else { return e };
        if e.0.starts_with(&format!("{}:", file.display())) {
            return e; // located already (a location's key)
        }
        let key = self.lines.iter().find(|(k, _)| {
            e.0.starts_with(&format!("--{k} ")) || e.0.starts_with(&format!("{k} "))
        });
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        };
        match key.or_else(|| self.lines.get_key_value(fallback)) {
            Some((k, line)) => {
                ConfigError(format!("{}:{line}: {k}: {label}{}", file.display(), e.0))
            }
            None if label.is_empty() => e,
            None => ConfigError(format!("{}: {label}{}", file.display(), e.0)),
        }
    }
}

/// A `[[vhost]]` host name as requests will be compared with it: lower case, without
/// the root's trailing dot; `*.example.com` stands for every name below
/// `example.com`. Refuses what no `Host` could ever match: a port (the server answers
/// every port it listens on), spaces, control characters, anything outside a DNS
/// name, an IPv4 address or an IPv6 address (without brackets).
pub fn host_name(h: &str) -> Result<String, String> {
    let name = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(name);
    }
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    let why = if labels.is_empty() {
        "expected a host name"
    } else if labels.contains('*') {
        "a wildcard is `*.` followed by a name (`*.example.com`)"
    } else if labels.contains(':') {
        "a host name without a port: a vhost answers on every port the server listens on"
    } else if labels.starts_with('.') || labels.contains("..") {
        "an empty label can never match a Host"
    } else if !labels
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        "letters, digits, '-', '_' and '.' only: a Host holding anything else is refused"
    } else {
        return Ok(name);
    };
    Err(format!("{h:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("A.Example.").unwrap(), "a.example");
        assert_eq!(host_name("*.Blog.test").unwrap(), "*.blog.test");
        assert_eq!(host_name("::1").unwrap(), "::1");
        for bad in ["", "*.", "a.*.b", "*", "a:80", "a b", ".a", "a..b", "*x.b"] {
            assert!(host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn location_paths() {
        assert!(LocationSpec::check_path("/assets/").is_ok());
        assert!(LocationSpec::check_path("/").is_ok());
        for bad in ["assets/", "/a?b", "/%61", "/a/../b", "/a//b"] {
            assert!(LocationSpec::check_path(bad).is_err(), "{bad:?}");
        }
    }
}
