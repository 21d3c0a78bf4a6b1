//! The [`Sites`] of one configuration: the top-level site and the `[[vhost]]`
//! sites, picked by the request's host as nginx picks a server block: an exact
//! name first, then the wildcard (`*.example.com`) with the longest suffix, then
//! the default site (the one marked `default = true`, else the top-level one).
//!
//! A `Sites` is built whole from a configuration and never changed afterwards; a
//! reload builds a new one and swaps it in (see `Shared::sites`), so a request sees
//! one consistent configuration from start to end.

use crate::config::file::Loaded;
use crate::config::settings::ConfigError;
use crate::config::site::{vhost_log, Site};

/// The sites of one configuration.
#[derive(Debug)]
pub struct Sites {
    /// The top-level site, then the vhosts in file order.
    sites: Vec<Site>,
    /// Exact names (lower case, no trailing dot) and the index of their site.
    exact: Vec<(String, usize)>,
    /// Wildcard suffixes (`.example.com` for `*.example.com`), longest first.
    wild: Vec<(String, usize)>,
    /// The site for a host no name matches.
    default: usize,
}

impl Sites {
    /// Sites from the top-level site and `(names, site)` pairs; a name given twice
    /// is refused. `default` is the index (among the vhosts) of the default site.
    pub fn new(
        top: Site,
        vhosts: Vec<(Vec<String>, Site)>,
        default: Option<usize>,
    ) -> Result<Sites, ConfigError> {
        let mut sites = Vec::with_capacity(1 + vhosts.len());
        sites.push(top);
        let (mut exact, mut wild) = (Vec::new(), Vec::new());
        for (names, site) in vhosts {
            let i = sites.len();
            for host in names {
                let host = host.to_ascii_lowercase();
                if host.is_empty() || host.contains(['/', ' ']) {
                    return Err(ConfigError(format!(
                        "vhost host {host:?} is not a host name"
                    )));
                }
                let known = exact.iter().chain(wild.iter()).any(|(h, _): &(String, _)| {
                    *h == host || host.strip_prefix('*').is_some_and(|s| s == h)
                });
                if known {
                    return Err(ConfigError(format!("vhost {host:?} is given twice")));
                }
                match host.strip_prefix('*') {
                    Some(suffix) => wild.push((suffix.to_string(), i)),
                    None => exact.push((host, i)),
                }
            }
            sites.push(site);
        }
        wild.sort_by_key(|w: &(String, usize)| std::cmp::Reverse(w.0.len()));
        Ok(Sites {
            sites,
            exact,
            wild,
            default: default.map_or(0, |d| d + 1),
        })
    }

    /// The sites of a loaded configuration: every root opened, every header checked;
    /// their file caches share `fd_budget` open descriptors.
    pub fn build(loaded: &Loaded, fd_budget: usize) -> Result<Sites, ConfigError> {
        let fd_budget = fd_budget / loaded.site_count();
        let top = Site::from_config(&loaded.config, &loaded.main, fd_budget)
            .map_err(|e| loaded.locate(e))?;
        let mut vhosts = Vec::with_capacity(loaded.vhosts.len());
        for v in &loaded.vhosts {
            let mut site = Site::from_config(&v.config, &v.spec, fd_budget)
                .map_err(|e| loaded.locate_vhost(v, e))?;
            site.access_log =
                vhost_log(&v.config, &loaded.config).map_err(|e| loaded.locate_vhost(v, e))?;
            vhosts.push((v.hosts.clone(), site));
        }
        let default = loaded.vhosts.iter().position(|v| v.default);
        Sites::new(top, vhosts, default)
    }

    /// The site a request with this `Host` value is answered from (see the module
    /// docs); case-insensitive, port and trailing dot ignored.
    pub fn pick(&self, host: Option<&str>) -> &Site {
        let Some(host) = host.filter(|_| self.sites.len() > 1) else {
            return &self.sites[self.default];
        };
        // A fully qualified name with its root dot names the same site, as in nginx.
        let name = host_name(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        let i = self
            .exact
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .or_else(|| self.wild.iter().find(|(s, _)| ends_with(name, s)))
            .map_or(self.default, |(_, i)| *i);
        &self.sites[i]
    }

    /// Whether any site's root is no longer the directory its configured path
    /// names (see [`crate::files::Files::root_moved`]).
    pub fn roots_moved(&self) -> bool {
        self.sites.iter().any(|s| s.files.root_moved())
    }

    /// What every configured root path names now (see
    /// [`crate::files::Files::configured_identity`]), to tell one failed rebuild
    /// from the next.
    pub fn root_identities(&self) -> Vec<Option<(u64, u64)>> {
        self.sites
            .iter()
            .map(|s| s.files.configured_identity())
            .collect()
    }

    /// Reopens the access logs of the sites that have their own (SIGHUP).
    pub fn reopen_logs(&self) {
        for s in &self.sites {
            s.access_log.reopen();
        }
    }

    /// Sites in all, the top-level one included.
    pub fn count(&self) -> usize {
        self.sites.len()
    }

    /// The site for requests whose host no site names.
    pub fn default_site(&self) -> &Site {
        &self.sites[self.default]
    }

    /// The virtual host names (exact, then wildcards as `*.suffix`).
    pub fn hosts(&self) -> impl Iterator<Item = String> + '_ {
        let exact = self.exact.iter().map(|(h, _)| h.clone());
        exact.chain(self.wild.iter().map(|(s, _)| format!("*{s}")))
    }
}

/// Whether `name` ends with `suffix` (`.example.com`), ignoring case, with at least
/// one more character before it.
pub(crate) fn ends_with(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len()
        && name.is_char_boundary(name.len() - suffix.len())
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
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
    fn wildcard_suffixes() {
        assert!(ends_with("a.Blog.test", ".blog.test"));
        assert!(ends_with("x.y.blog.test", ".blog.test"));
        assert!(!ends_with("blog.test", ".blog.test"));
        assert!(!ends_with(".blog.test", ".blog.test"));
        assert!(!ends_with("ablog.test", ".blog.test"));
    }
}
