//! Typed keys applied onto a [`Config`]: the process-wide keys and a site's keys,
//! each skipped when the command line gave that flag (the command line wins), and
//! the list of process-wide values a reload cannot change.

use std::collections::BTreeSet;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::keys::{
    AcceptSpread, Cors, Items, Level, LogFormat, OnOff, ProcessKeys, SiteKeys, Size,
};
use crate::config::settings::ConfigError;
use crate::config::table::Doc;
use crate::config::Config;

/// For each `field "name" key => f`: sets `$cfg.field` from `$keys.key` (named
/// `name` in the file) unless the command line gave it; `f` turns the typed value
/// into the field's.
macro_rules! fill {
    ($cfg:ident, $keys:ident, $on_cli:ident;
     $($field:ident $name:literal $key:ident => $f:expr),* $(,)?) => {
        $(if let Some(v) = &$keys.$key {
            if !$on_cli.contains($name) {
                $cfg.$field = ($f)(v.get_ref());
            }
        })*
    };
}

/// Applies the process-wide keys of the file to `cfg`, except those in `on_cli`.
pub fn process(
    cfg: &mut Config,
    k: &ProcessKeys,
    on_cli: &BTreeSet<String>,
    doc: &Doc<'_>,
) -> Result<(), ConfigError> {
    if let Some(t) = k.threads.as_ref().filter(|t| *t.get_ref() == 0) {
        return Err(doc.at(doc.line(t.span().start), "threads", "must be at least 1"));
    }
    if let Some(t) = k.defer_accept.as_ref().filter(|t| *t.get_ref() > 3600) {
        let line = doc.line(t.span().start);
        return Err(doc.at(line, "defer-accept", "expected 0 to 3600 seconds"));
    }
    #[rustfmt::skip]
    fill!(cfg, k, on_cli;
        port "port" port => |v: &u16| *v,
        bind "bind" bind => |v: &Items<IpAddr>| v.0.clone(),
        threads "threads" threads => |v: &usize| Some(*v),
        reactors "reactors" reactors => |v: &usize| Some(*v),
        timeout "timeout" timeout => |v: &u64| *v,
        header_timeout "header-timeout" header_timeout => |v: &u64| *v,
        grace "grace" grace => |v: &u64| *v,
        max_conns "max-conns" max_conns => |v: &usize| Some(*v),
        backlog "backlog" backlog => |v: &i32| *v,
        max_uri "max-uri" max_uri => |v: &usize| *v,
        max_header "max-header" max_header => |v: &usize| *v,
        max_body "max-body" max_body => |v: &u64| *v,
        log_level "log-level" log_level => |v: &Level| v.0,
        log_dir "log-dir" log_dir => PathBuf::clone,
        close_log "close-log" close_log => |v: &bool| *v,
        log_async "log-async" log_async => |v: &bool| *v,
        access_log "access-log" access_log => String::clone,
        log_format "log-format" log_format => |v: &LogFormat| *v,
        pid_file "pid-file" pid_file => |v: &PathBuf| Some(v.clone()),
        stats_path "stats-path" stats_path => |v: &String| Some(v.clone()),
        metrics_path "metrics-path" metrics_path => |v: &String| Some(v.clone()),
        stats_allow "stats-allow" stats_allow => |v: &Items<String>| v.0.clone(),
        health_path "health-path" health_path => String::clone,
        reuseport "reuseport" reuseport => |v: &bool| *v,
        accept_spread "accept-spread" accept_spread => |v: &AcceptSpread| *v,
        defer_accept "defer-accept" defer_accept => |v: &u32| *v,
        defer_write "defer-write" defer_write => |v: &bool| *v,
        compress_cache "compress-cache" compress_cache => |v: &Size| v.0,
        tls_port "tls-port" tls_port => |v: &u16| *v,
        redirect_https "redirect-https" redirect_https => |v: &bool| *v,
    );
    Ok(())
}

/// Applies a site's keys (or a location's) to `cfg`, except those in `on_cli`: a
/// value replaces the one before, except `header`, whose lines add to those before
/// (one of the same name replaces it).
pub fn site(cfg: &mut Config, k: &SiteKeys, on_cli: &BTreeSet<String>) {
    let before = cfg.headers.clone();
    let types = |v: &Items<String>| -> Vec<String> {
        let each = v.0.iter().flat_map(|t| t.split(','));
        each.map(|t| t.trim().to_string()).collect()
    };
    #[rustfmt::skip]
    fill!(cfg, k, on_cli;
        root "root" root => PathBuf::clone,
        follow_symlinks "follow-symlinks" follow_symlinks => |v: &bool| *v,
        autoindex "autoindex" autoindex => |v: &bool| *v,
        cors "cors" cors => |v: &Cors| v.0.clone(),
        cache_control "cache-control" cache_control => |v: &String| Some(v.clone()),
        headers "header" header => |v: &Items<String>| add_headers(&before, &v.0),
        try_files "try-files" try_files => |v: &String| Some(v.clone()),
        error_pages "error-page" error_page => |v: &Items<String>| v.0.clone(),
        precompressed "precompressed" precompressed => |v: &OnOff| v.0,
        precompressed_check "precompressed-check" precompressed_check => |v: &OnOff| v.0,
        compress "compress" compress => |v: &OnOff| v.0,
        compress_types "compress-types" compress_types => types,
        compress_min "compress-min" compress_min => |v: &u64| *v,
        tls_cert "tls-cert" tls_cert => |v: &PathBuf| Some(v.clone()),
        tls_key "tls-key" tls_key => |v: &PathBuf| Some(v.clone()),
        auth_basic "auth-basic" auth_basic => |v: &String| Some(v.clone()),
        auth_basic_user_file "auth-basic-user-file" auth_basic_user_file => |v: &PathBuf| Some(v.clone()),
        access_log "access-log" access_log => String::clone,
        log_format "log-format" log_format => |v: &LogFormat| *v,
    );
}

/// `before` with `own` added: a line whose name is already there replaces it.
pub fn add_headers(before: &[String], own: &[String]) -> Vec<String> {
    let name = |h: &str| {
        h.split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let mut out: Vec<String> = before
        .iter()
        .filter(|b| !own.iter().any(|o| name(o) == name(b)))
        .cloned()
        .collect();
    out.extend(own.iter().cloned());
    out
}

/// Names of the process-wide settings that differ between `a` and `b` (what a
/// reload cannot apply).
pub fn process_changes(a: &Config, b: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! cmp {
        ($($field:ident $name:literal),* $(,)?) => {
            $(if format!("{:?}", a.$field) != format!("{:?}", b.$field) {
                changed.push($name);
            })*
        };
    }
    cmp!(
        port "port", bind "bind", threads "threads", reactors "reactors",
        timeout "timeout", header_timeout "header-timeout", grace "grace",
        max_conns "max-conns", backlog "backlog", max_uri "max-uri",
        max_header "max-header", max_body "max-body", log_dir "log-dir",
        close_log "close-log", log_async "log-async", access_log "access-log",
        pid_file "pid-file", stats_path "stats-path", metrics_path "metrics-path",
        stats_allow "stats-allow", health_path "health-path", reuseport "reuseport",
        accept_spread "accept-spread", defer_accept "defer-accept", defer_write "defer-write",
        compress_cache "compress-cache", tls_port "tls-port",
        redirect_https "redirect-https",
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_add_and_replace_by_name() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            add_headers(&s(&["X-A: 1", "X-B: 2"]), &s(&["x-b: 3", "X-C: 4"])),
            s(&["X-A: 1", "x-b: 3", "X-C: 4"])
        );
    }
}
