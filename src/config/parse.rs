//! Reading the file's tables: the top level, `[defaults]`, `[[vhost]]`,
//! `[[location]]`, `[[redirect]]` and `[[headers]]`. Each key is sorted into the
//! group its table allows (a key in the wrong table is refused with its own reason)
//! and each group deserialized into its typed struct.

use std::collections::{BTreeMap, BTreeSet};

use toml::de::DeValue;
use toml::Spanned;

use crate::config::apply;
use crate::config::keys::{
    LocationPath, ProcessKeys, RedirectKeys, RuleKeys, SiteKeys, VhostKeys, LOCATION_KEYS,
    PROCESS_KEYS, SITE_KEYS, VHOST_LOG_KEYS,
};
use crate::config::redirect::Redirect;
use crate::config::settings::ConfigError;
use crate::config::site;
use crate::config::spec::{host_name, LocationSpec, PathRule, SiteSpec};
use crate::config::table::{entries, tables, Doc, Entry};
use crate::config::Config;

/// What a site's table holds, checked.
#[derive(Debug, Default)]
pub struct SiteTable {
    /// Its site keys.
    pub keys: SiteKeys,
    /// Its `[[headers]]` rules.
    pub rules: Vec<PathRule>,
    /// Its `[[location]]` tables.
    pub locations: Vec<LocationSpec>,
    /// Its `[[redirect]]` rules.
    pub redirects: Vec<Redirect>,
    /// The line of each key it set.
    pub lines: BTreeMap<String, usize>,
}

/// A `[[vhost]]` table.
#[derive(Debug)]
pub struct RawVhost {
    /// Its names, checked and lower-cased.
    pub hosts: Vec<String>,
    /// The line of `default = true`, when it says so.
    pub default_line: Option<usize>,
    /// Where the table starts.
    pub line: usize,
    /// The line of its `host` key.
    pub host_line: usize,
    /// Its site keys and tables.
    pub site: SiteTable,
}

/// The whole file, checked.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The process-wide keys.
    pub process: ProcessKeys,
    /// Their lines.
    pub process_lines: BTreeMap<String, usize>,
    /// The default site's keys and tables.
    pub top: SiteTable,
    /// `[defaults]`, when given.
    pub defaults: Option<SiteTable>,
    /// The `[[vhost]]` tables in file order.
    pub vhosts: Vec<RawVhost>,
}

/// What reading a table needs.
struct Cx<'a> {
    doc: &'a Doc<'a>,
    blank: &'a Config,
}

/// Checks what a location's keys say on their own (headers, try-files, error
/// pages), so an error names the location's line.
fn check_location(cx: &Cx<'_>, l: &LocationSpec) -> Result<(), ConfigError> {
    let mut cfg = cx.blank.clone();
    apply::site(&mut cfg, &l.keys, &BTreeSet::new());
    site::check(&cfg).map_err(|e| {
        let spec = SiteSpec {
            lines: l.lines.clone(),
            label: format!("location {:?}", l.path),
            ..SiteSpec::default()
        };
        spec.locate(Some(cx.doc.path), e, "location")
    })
}

/// Where a table is, for the reason a key is refused there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Defaults,
    Vhost,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Top => "the top level",
            Place::Defaults => "[defaults]",
            Place::Vhost => "[[vhost]]",
        }
    }
}

/// Reads and checks the whole file.
///
/// `blank` is the configuration with every default, which a location's keys are
/// checked against.
pub fn file(doc: &Doc<'_>, source: &str, blank: &Config) -> Result<Parsed, ConfigError> {
    let root = doc.parse(source)?;
    let mut all: Vec<Entry<'_, '_>> = root.get_ref().iter().collect();
    // In file order, so the first error reported is the first in the file.
    all.sort_by_key(|e| e.0.span().start);
    let cx = Cx { doc, blank };
    let mut parsed = Parsed::default();
    let (mut process, mut tables_after) = (Vec::new(), Vec::new());
    for &e in &all {
        match e.0.get_ref().as_ref() {
            "vhost" | "defaults" => tables_after.push(e),
            k if PROCESS_KEYS.contains(&k) => {
                let line = doc.line(e.0.span().start);
                parsed.process_lines.insert(k.into(), line);
                process.push(e);
            }
            k if SITE_KEYS.contains(&k) || ["location", "redirect"].contains(&k) => {}
            _ => return Err(doc.at_key(e, "unknown key")),
        }
    }
    let top = site_table(&cx, &all, Place::Top);
    let typed = doc.typed(&process, root.span(), "config");
    let (top, process) = first_error(doc, top, typed)?;
    parsed.top = top.0;
    parsed.process = process;
    for e in tables_after {
        if e.0.get_ref() == "defaults" {
            parsed.defaults = Some(defaults(&cx, e)?);
            continue;
        }
        for t in tables(doc, e)? {
            let v = vhost(&cx, t)?;
            duplicate_hosts(doc, &parsed.vhosts, &v)?;
            parsed.vhosts.push(v);
        }
    }
    Ok(parsed)
}

/// Both values, or the error of the two that is earlier in the file.
fn first_error<A, B>(
    doc: &Doc<'_>,
    a: Result<A, ConfigError>,
    b: Result<B, ConfigError>,
) -> Result<(A, B), ConfigError> {
    let line = |e: &ConfigError| {
        let rest = e.0.strip_prefix(&format!("{}:", doc.path.display()));
        let digits = rest.map(|r| r.split(':').next().unwrap_or(""));
        digits
            .and_then(|d| d.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(x), Err(y)) => Err(if line(&y) < line(&x) { y } else { x }),
    }
}

/// Splits a site's table: its site keys, `[[headers]]`, `[[location]]` and
/// `[[redirect]]` are read; the other entries are returned for the caller.
fn site_table<'a, 'i>(
    cx: &Cx<'_>,
    all: &[Entry<'a, 'i>],
    place: Place,
) -> Result<(SiteTable, Vec<Entry<'a, 'i>>), ConfigError> {
    let doc = cx.doc;
    let mut t = SiteTable::default();
    let (mut keys, mut tabs, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for &e in all {
        let name: &str = e.0.get_ref();
        match name {
            "headers" | "location" | "redirect" => tabs.push(e),
            _ if SITE_KEYS.contains(&name) => keys.push(e),
            _ if place == Place::Vhost && VHOST_LOG_KEYS.contains(&name) => keys.push(e),
            _ => {
                rest.push(e);
                continue;
            }
        }
        t.lines.insert(name.to_string(), doc.line(e.0.span().start));
    }
    let span = all.first().map_or(0..0, |e| e.0.span());
    t.keys = doc.typed(&keys, span, "site")?;
    // The tables after the keys, as the file has them.
    tabs.sort_by_key(|e| e.0.span().start);
    for e in tabs {
        match e.0.get_ref().as_ref() {
            "headers" => t.rules = rules(doc, e)?,
            _ if place == Place::Defaults => {
                return Err(doc.at_key(e, "belongs to one site: not allowed in [defaults]"))
            }
            "location" => t.locations = locations(cx, e)?,
            _ => t.redirects = redirects(doc, e)?,
        }
    }
    Ok((t, rest))
}

/// `[defaults]`: site keys only.
fn defaults(cx: &Cx<'_>, e: Entry<'_, '_>) -> Result<SiteTable, ConfigError> {
    let doc = cx.doc;
    if !e.1.get_ref().is_table() {
        return Err(doc.at_key(e, "expected a [defaults] table"));
    }
    let (t, rest) = site_table(cx, &entries(e.1), Place::Defaults)?;
    match rest.first() {
        Some(&r) => Err(refused(doc, r, Place::Defaults)),
        None => Ok(t),
    }
}

/// One `[[vhost]]` table: `host`, `default`, site keys and tables.
fn vhost(cx: &Cx<'_>, t: &Spanned<DeValue<'_>>) -> Result<RawVhost, ConfigError> {
    let doc = cx.doc;
    let line = doc.line(t.span().start);
    let (site, rest) = site_table(cx, &entries(t), Place::Vhost)?;
    let mut own = Vec::new();
    for e in rest {
        match e.0.get_ref().as_ref() {
            "host" | "default" => own.push(e),
            _ => return Err(refused(doc, e, Place::Vhost)),
        }
    }
    if !own.iter().any(|e| e.0.get_ref() == "host") {
        return Err(doc.at(
            line,
            "vhost",
            "missing `host = \"name\"` (or a list of names)",
        ));
    }
    let keys: VhostKeys = doc.typed(&own, t.span(), "vhost")?;
    let host_line = doc.line(keys.host.span().start);
    let mut hosts = Vec::with_capacity(keys.host.get_ref().0.len());
    for h in &keys.host.get_ref().0 {
        hosts.push(host_name(h).map_err(|m| doc.at(host_line, "host", m))?);
    }
    if hosts.is_empty() {
        return Err(doc.at(host_line, "host", "expected at least one name"));
    }
    let default_line = keys
        .default
        .filter(|d| *d.get_ref())
        .map(|d| doc.line(d.span().start));
    Ok(RawVhost {
        hosts,
        default_line,
        line,
        host_line,
        site,
    })
}

/// Refuses a name given twice, in one vhost or two.
fn duplicate_hosts(doc: &Doc<'_>, before: &[RawVhost], v: &RawVhost) -> Result<(), ConfigError> {
    for (i, h) in v.hosts.iter().enumerate() {
        let first = before
            .iter()
            .find(|b| b.hosts.contains(h))
            .map(|b| b.host_line)
            .or_else(|| v.hosts[..i].contains(h).then_some(v.host_line));
        if let Some(first) = first {
            let msg = format!("vhost {h:?} is given twice (first at line {first})");
            return Err(doc.at(v.host_line, "host", msg));
        }
    }
    Ok(())
}

/// Why a key is refused in a site's table at `place`.
fn refused(doc: &Doc<'_>, e: Entry<'_, '_>, place: Place) -> ConfigError {
    let name: &str = e.0.get_ref();
    if VHOST_LOG_KEYS.contains(&name) {
        let msg = "not allowed in [defaults]: the main log is a top-level key, a site's own \
                   log goes in its [[vhost]]";
        return doc.at_key(e, msg);
    }
    if PROCESS_KEYS.contains(&name) {
        let msg = format!(
            "not allowed in {}: it applies to the whole server (a top-level key)",
            place.name()
        );
        return doc.at_key(e, msg);
    }
    doc.at_key(e, "unknown key")
}

/// `[[headers]]` tables: `path = "/glob"`, `set = { "Name" = "value" }`.
fn rules(doc: &Doc<'_>, e: Entry<'_, '_>) -> Result<Vec<PathRule>, ConfigError> {
    let mut out = Vec::new();
    for t in tables(doc, e)? {
        let line = doc.line(t.span().start);
        let r: RuleKeys = doc.typed(&entries(t), t.span(), "headers")?;
        let set: Vec<(String, String)> = r.set.into_iter().collect();
        out.push(PathRule::new(&r.path, &set).map_err(|m| doc.at(line, "headers", m))?);
    }
    Ok(out)
}

/// `[[redirect]]` tables: `from`, `to`, `status`.
fn redirects(doc: &Doc<'_>, e: Entry<'_, '_>) -> Result<Vec<Redirect>, ConfigError> {
    let mut out = Vec::new();
    for t in tables(doc, e)? {
        let r: RedirectKeys = doc.typed(&entries(t), t.span(), "redirect")?;
        let status = r.status.as_ref().map_or(301, |s| *s.get_ref());
        let rule = Redirect::new(r.from.get_ref(), r.to.get_ref(), status).map_err(|(k, m)| {
            let span = match k {
                "from" => r.from.span(),
                "to" => r.to.span(),
                _ => r.status.as_ref().map_or(t.span(), |s| s.span()),
            };
            doc.at(doc.line(span.start), k, m)
        })?;
        out.push(rule);
    }
    Ok(out)
}

/// `[[location]]` tables: `path` and the site keys a location may set.
fn locations(cx: &Cx<'_>, e: Entry<'_, '_>) -> Result<Vec<LocationSpec>, ConfigError> {
    let doc = cx.doc;
    let mut out: Vec<LocationSpec> = Vec::new();
    for t in tables(doc, e)? {
        let line = doc.line(t.span().start);
        let (mut own, mut keys, mut lines) = (Vec::new(), Vec::new(), BTreeMap::new());
        lines.insert("location".to_string(), line);
        for e in entries(t) {
            let name: &str = e.0.get_ref();
            lines.insert(name.to_string(), doc.line(e.0.span().start));
            match name {
                "path" => own.push(e),
                _ if LOCATION_KEYS.contains(&name) => keys.push(e),
                _ if SITE_KEYS.contains(&name) => {
                    return Err(doc.at_key(e, "not allowed in [[location]]: set it on the site"))
                }
                _ if PROCESS_KEYS.contains(&name) => {
                    let msg = "not allowed in [[location]]: it applies to the whole server";
                    return Err(doc.at_key(e, msg));
                }
                _ => return Err(doc.at_key(e, "unknown key")),
            }
        }
        if own.is_empty() {
            return Err(doc.at(line, "location", "missing `path = \"/prefix/\"`"));
        }
        let p: LocationPath = doc.typed(&own, t.span(), "location")?;
        let path = p.path.get_ref().clone();
        let at_path = |m| doc.at(doc.line(p.path.span().start), "path", m);
        LocationSpec::check_path(&path).map_err(at_path)?;
        if out.iter().any(|l| l.path == path) {
            return Err(at_path(format!("location {path:?} is given twice")));
        }
        let keys: SiteKeys = doc.typed(&keys, t.span(), "location")?;
        let l = LocationSpec { path, keys, lines };
        check_location(cx, &l)?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    fn parse(text: &str) -> Result<Parsed, String> {
        let doc = Doc::new(Path::new("h.toml"), text);
        let blank = Config::parse_from(["hearth"]);
        file(&doc, text, &blank).map_err(|e| e.0)
    }

    #[test]
    fn tables_sorted_into_their_groups() {
        let p = parse(
            "port = 1\nroot = \"/srv\"\naccess-log = \"off\"\n\
             [[location]]\npath = \"/a/\"\nautoindex = true\n\
             [[redirect]]\nfrom = \"^/x\"\nto = \"/y\"\n\
             [defaults]\nheader = \"X-A: 1\"\n\
             [[vhost]]\nhost = [\"a.test\", \"*.A.test.\"]\ndefault = true\naccess-log = \"/tmp/a.log\"\n",
        )
        .unwrap();
        assert_eq!(p.process.port.as_ref().map(|p| *p.get_ref()), Some(1));
        assert!(
            p.process.access_log.is_some(),
            "the main log at the top level"
        );
        assert_eq!(p.process_lines["port"], 1);
        assert_eq!(p.top.lines["root"], 2);
        assert_eq!((p.top.locations.len(), p.top.redirects.len()), (1, 1));
        assert!(p.defaults.is_some_and(|d| d.keys.header.is_some()));
        let v = &p.vhosts[0];
        assert_eq!(v.hosts, ["a.test", "*.a.test"]);
        assert_eq!((v.default_line, v.host_line), (Some(14), 13));
        assert!(v.site.keys.access_log.is_some(), "a vhost's own log");
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(e("port = 1\nbogus = 2\n"), "h.toml:2: bogus: unknown key");
        assert!(e("\n\nport = \"x\"\n").starts_with("h.toml:3: port: invalid type"));
        assert!(e("[[vhost]]\nhost = \"a\"\nthreads = 2\n").starts_with("h.toml:3: threads"));
        assert!(e("[[vhost]]\nroot = \"/\"\n").contains("missing `host"));
        let reserved = "[[headers]]\npath = \"/**\"\nset = { Connection = \"x\" }\n";
        assert!(e(reserved).starts_with("h.toml:1: headers:"));
        assert!(e("port = \n").starts_with("h.toml:1:"));
        assert!(
            e("[defaults]\n[[defaults.redirect]]\nfrom = \"a\"\nto = \"/\"\n")
                .contains("not allowed in [defaults]")
        );
    }
}
