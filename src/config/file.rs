//! The `--config FILE` (TOML) layer under the command line.
//!
//! The file is read as a spanned tree; each table's keys are split into groups
//! (process-wide, per site, the table's own) and each group is deserialized into its
//! typed struct (`config::keys`), so a wrong type, an unknown key, a value out of
//! range or a key in the wrong table is refused with `FILE:LINE: key: ...`. The
//! typed values are then applied onto the command line's [`Config`]: a flag given on
//! the command line wins over the file's top-level key of the same name.
//!
//! Sites share nothing implicitly: the top-level site keys (and `[[headers]]`,
//! `[[location]]`, `[[redirect]]`) are the default site's; `[defaults]` is what every
//! site starts from; each `[[vhost]]` is `[defaults]` with its own keys applied.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::apply;
use crate::config::parse::{self, Parsed, SiteTable};
use crate::config::settings::ConfigError;
pub use crate::config::spec::{LocationSpec, PathRule, SiteSpec};
use crate::config::table::Doc;
use crate::config::Config;

/// One `[[vhost]]` table.
#[derive(Debug, Clone)]
pub struct Vhost {
    /// The first name it answers (for messages).
    pub host: String,
    /// Every name it answers: lower case, no trailing dot, `*.` for wildcards.
    pub hosts: Vec<String>,
    /// It answers requests whose host no site names (`default = true`).
    pub default: bool,
    /// `[defaults]` with the table's keys applied.
    pub config: Config,
    /// Its rules, locations, redirects and key lines.
    pub spec: SiteSpec,
}

/// A configuration: the command line over the file, if there is one.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The process-wide settings and the default site's.
    pub config: Config,
    /// The default site's rules, locations, redirects and key lines (its
    /// process-wide keys' lines too).
    pub main: SiteSpec,
    /// The `[[vhost]]` tables in file order.
    pub vhosts: Vec<Vhost>,
    /// The file, when `--config` was given.
    pub file: Option<PathBuf>,
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The command line itself (or `--help`/`--version`): print as clap does.
    Args(clap::Error),
    /// The file or a value in it (exit code 2).
    Config(ConfigError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Args(e) => write!(f, "{}", first_line(&e.to_string())),
            LoadError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> LoadError {
        LoadError::Config(e)
    }
}

impl Loaded {
    /// A configuration that came from flags alone (no file).
    pub fn from_config(config: Config) -> Loaded {
        Loaded {
            config,
            main: SiteSpec::default(),
            vhosts: Vec::new(),
            file: None,
        }
    }

    /// Adds the file name and line to an error found after parsing (a bad
    /// `--header` value, a missing root) when the file set that key.
    pub fn locate(&self, e: ConfigError) -> ConfigError {
        let key = self
            .main
            .lines
            .keys()
            .find(|k| e.0.starts_with(&format!("--{k} ")) || e.0.starts_with(&format!("{k} ")));
        match key {
            Some(_) => self.main.locate(self.file.as_deref(), e, ""),
            None => e,
        }
    }

    /// Adds the file name, line and key to an error found while building the site
    /// of `v`: the line of the key it set (itself or in `[defaults]`), else the line
    /// of the table.
    pub fn locate_vhost(&self, v: &Vhost, e: ConfigError) -> ConfigError {
        v.spec.locate(self.file.as_deref(), e, "vhost")
    }

    /// The sites in all: the default one and the vhosts.
    pub fn site_count(&self) -> usize {
        1 + self.vhosts.len()
    }
}

/// Parses `argv` (program name first) and the `--config` file it names, if any.
pub fn load(argv: &[OsString]) -> Result<Loaded, LoadError> {
    let cmd = Config::command();
    let cli = cmd
        .clone()
        .try_get_matches_from(argv)
        .map_err(LoadError::Args)?;
    let mut config = Config::from_arg_matches(&cli).map_err(LoadError::Args)?;
    let Some(path) = config.config.clone() else {
        return Ok(Loaded::from_config(config));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let doc = Doc::new(&path, &text);
    // The site keys the file leaves unset keep clap's defaults, for every site.
    let blank = Config::try_parse_from(["hearth"]).map_err(LoadError::Args)?;
    let parsed = parse::file(&doc, &text, &blank)?;
    let on_cli: BTreeSet<String> = cmd
        .get_arguments()
        .filter(|a| cli.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let mut main = main_site(&mut config, &parsed, &on_cli)?;
    main.file = Some(path.clone());
    apply::process(&mut config, &parsed.process, &on_cli, &doc)?;
    // A vhost logs where and how the main log does unless it says otherwise.
    let base = Config {
        access_log: config.access_log.clone(),
        log_format: config.log_format,
        ..blank
    };
    let vhosts = vhosts(&doc, &base, parsed)?;
    Ok(Loaded {
        config,
        main,
        vhosts,
        file: Some(path),
    })
}

/// The default site: `[defaults]`, then the top-level keys, each under what the
/// command line gave.
fn main_site(
    config: &mut Config,
    p: &Parsed,
    on_cli: &BTreeSet<String>,
) -> Result<SiteSpec, ConfigError> {
    let mut spec = SiteSpec::default();
    if let Some(d) = &p.defaults {
        apply::site(config, &d.keys, on_cli);
        spec.rules.extend(d.rules.iter().cloned());
        spec.lines.extend(d.lines.clone());
    }
    apply::site(config, &p.top.keys, on_cli);
    spec.rules.extend(p.top.rules.iter().cloned());
    spec.locations = p.top.locations.clone();
    spec.redirects = p.top.redirects.clone();
    spec.lines.extend(p.top.lines.clone());
    spec.lines.extend(p.process_lines.clone());
    Ok(spec)
}

/// The `[[vhost]]` sites: each `[defaults]` with its own keys applied; at most one
/// is the default.
fn vhosts(doc: &Doc<'_>, blank: &Config, p: Parsed) -> Result<Vec<Vhost>, ConfigError> {
    let none = BTreeSet::new();
    let mut out: Vec<Vhost> = Vec::with_capacity(p.vhosts.len());
    let mut default_line: Option<usize> = None;
    for v in p.vhosts {
        let mut config = blank.clone();
        let mut spec = SiteSpec {
            label: format!("vhost {:?}", v.hosts[0]),
            file: Some(doc.path.to_path_buf()),
            ..SiteSpec::default()
        };
        if let Some(d) = &p.defaults {
            apply::site(&mut config, &d.keys, &none);
            spec.rules.extend(d.rules.iter().cloned());
            spec.lines.extend(d.lines.clone());
        }
        let SiteTable {
            keys,
            rules,
            locations,
            redirects,
            lines,
        } = v.site;
        apply::site(&mut config, &keys, &none);
        spec.rules.extend(rules);
        spec.locations = locations;
        spec.redirects = redirects;
        spec.lines.extend(lines);
        spec.lines.insert("vhost".into(), v.line);
        if let Some(line) = v.default_line {
            if let Some(first) = default_line {
                let msg = format!("only one site may be the default (first at line {first})");
                return Err(doc.at(line, "default", msg));
            }
            default_line = Some(line);
        }
        out.push(Vhost {
            host: v.hosts[0].clone(),
            hosts: v.hosts,
            default: v.default_line.is_some(),
            config,
            spec,
        });
    }
    Ok(out)
}

fn first_line(s: &str) -> &str {
    let s = s.trim_start_matches("error: ");
    s.lines().next().unwrap_or(s).trim()
}
