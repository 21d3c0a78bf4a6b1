//! The `--config FILE` (TOML) layer under the command line.
//!
//! A top-level key is a long flag name and becomes command-line arguments placed
//! before the real ones (`port = 80` -> `--port=80`, an array repeats the flag,
//! `true` -> `--flag`, `false` -> nothing), so clap parses and validates both in one
//! pass and every flag is a key without a second list of names. Each key is first
//! parsed alone, so an error names the key and its line. A flag given on the command
//! line replaces the file's value, repeatable flags included.
//!
//! `[[vhost]]` tables are the top-level configuration with the table's keys applied
//! on top (only the per-site keys in [`SITE_KEYS`]); `[[headers]]` tables (and
//! `[[vhost.headers]]`) add headers to responses whose path matches a glob.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use globset::Glob;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::settings::{header_field, ConfigError};
use crate::config::Config;

/// Keys a `[[vhost]]` table may set: what a site answers requests with. Every other
/// flag applies to the whole process (and needs a restart to change).
pub const SITE_KEYS: &[&str] = &[
    "root",
    "follow-symlinks",
    "autoindex",
    "cors",
    "cache-control",
    "header",
    "try-files",
    "error-page",
    "precompressed",
    "precompressed-check",
    "compress",
    "compress-types",
    "compress-min",
    "tls-cert",
    "tls-key",
    "auth-basic",
    "auth-basic-user-file",
    "access-log",
    "log-format",
];

/// Flags that make no sense inside the file.
const NOT_KEYS: &[&str] = &["config", "check", "help", "version"];

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

/// One `[[vhost]]` table.
#[derive(Debug, Clone)]
pub struct Vhost {
    /// The host name it answers (no port).
    pub host: String,
    /// The top-level configuration with the table's keys applied.
    pub config: Config,
    /// Its `[[vhost.headers]]` rules, or the top-level ones when it has none.
    pub rules: Vec<PathRule>,
    /// Where the table starts, for error messages.
    pub line: usize,
    /// Lines of the table's own keys.
    lines: BTreeMap<String, usize>,
}

/// A configuration: the command line over the file, if there is one.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged top-level configuration.
    pub config: Config,
    /// The `[[vhost]]` tables in file order.
    pub vhosts: Vec<Vhost>,
    /// The top-level `[[headers]]` rules in file order.
    pub rules: Vec<PathRule>,
    /// The file, when `--config` was given.
    pub file: Option<PathBuf>,
    /// Every flag's effective raw values, by long name (to tell what a reload changed).
    pub values: BTreeMap<String, Vec<OsString>>,
    /// Lines of the file's top-level keys.
    lines: BTreeMap<String, usize>,
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
            vhosts: Vec::new(),
            rules: Vec::new(),
            file: None,
            values: BTreeMap::new(),
            lines: BTreeMap::new(),
        }
    }

    /// Adds the file name and line to an error found after parsing (a bad
    /// `--header` value, a missing root) when the file set that key.
    pub fn locate(&self, e: ConfigError) -> ConfigError {
        let Some(file) = &self.file else { return e };
        let key = self.lines.iter().find(|(k, _)| {
            e.0.starts_with(&format!("--{k} ")) || e.0.starts_with(&format!("{k} "))
        });
        match key {
            Some((k, line)) => ConfigError(format!("{}:{line}: {k}: {}", file.display(), e.0)),
            None => e,
        }
    }

    /// Adds the file name, line and key to an error found while building the site
    /// of `v`: the line of the vhost's own key when it set the key, else that of the
    /// top-level key it inherited, else the line of the table.
    pub fn locate_vhost(&self, v: &Vhost, e: ConfigError) -> ConfigError {
        let file = self.file.as_deref().unwrap_or(Path::new("-"));
        let names =
            |k: &String| e.0.starts_with(&format!("--{k} ")) || e.0.starts_with(&format!("{k} "));
        let found = v
            .lines
            .iter()
            .find(|(k, _)| names(k))
            .or_else(|| self.lines.iter().find(|(k, _)| names(k)));
        let (key, line) = match found {
            Some((k, line)) => (k.as_str(), *line),
            None => ("vhost", v.line),
        };
        ConfigError(format!(
            "{}:{line}: {key}: vhost {:?}: {}",
            file.display(),
            v.host,
            e.0
        ))
    }
}

/// Parses `argv` (program name first) and the `--config` file it names, if any.
pub fn load(argv: &[OsString]) -> Result<Loaded, LoadError> {
    let cmd = Config::command();
    let cli = cmd
        .clone()
        .try_get_matches_from(argv)
        .map_err(LoadError::Args)?;
    let config = Config::from_arg_matches(&cli).map_err(LoadError::Args)?;
    let Some(path) = config.config.clone() else {
        let values = raw_values(&cli);
        return Ok(Loaded {
            values,
            ..Loaded::from_config(config)
        });
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let file = parse_file(&path, &text)?;
    let on_cli: BTreeSet<String> = cmd
        .get_arguments()
        .filter(|a| cli.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let (config, values) = merge(&file.keys, &BTreeMap::new(), &on_cli, argv)?;
    let mut vhosts = Vec::with_capacity(file.vhosts.len());
    for v in file.vhosts {
        let (mut config, _) = merge(&file.keys, &v.keys, &on_cli, argv)?;
        own_lists(&mut config, &v.keys)?;
        let rules = v.rules.unwrap_or_else(|| file.rules.clone());
        vhosts.push(Vhost {
            host: v.host,
            config,
            rules,
            line: v.line,
            lines: v.keys.iter().map(|(k, a)| (k.clone(), a.line)).collect(),
        });
    }
    Ok(Loaded {
        config,
        vhosts,
        rules: file.rules,
        file: Some(path),
        values,
        lines: file.keys.iter().map(|(k, a)| (k.clone(), a.line)).collect(),
    })
}

/// The arguments of one key and where it was.
#[derive(Debug, Clone)]
struct KeyArgs {
    args: Vec<OsString>,
    line: usize,
}

/// A parsed `[[vhost]]` table.
struct RawVhost {
    host: String,
    host_line: usize,
    keys: BTreeMap<String, KeyArgs>,
    rules: Option<Vec<PathRule>>,
    line: usize,
}

/// What the file holds, each key already checked on its own.
struct File {
    keys: BTreeMap<String, KeyArgs>,
    vhosts: Vec<RawVhost>,
    rules: Vec<PathRule>,
}

/// `base` keys not overridden by `top` or the command line, then the command line,
/// then `top` (a vhost's keys), parsed once. Flags may repeat here, the later
/// winning, because the layers were merged key by key.
fn merge(
    base: &BTreeMap<String, KeyArgs>,
    top: &BTreeMap<String, KeyArgs>,
    on_cli: &BTreeSet<String>,
    argv: &[OsString],
) -> Result<(Config, BTreeMap<String, Vec<OsString>>), LoadError> {
    let mut all: Vec<OsString> = vec![argv.first().cloned().unwrap_or_else(|| "hearth".into())];
    for (k, a) in base {
        if !on_cli.contains(k) && !top.contains_key(k) {
            all.extend(a.args.iter().cloned());
        }
    }
    all.extend(argv.iter().skip(1).cloned());
    for a in top.values() {
        all.extend(a.args.iter().cloned());
    }
    let m = Config::command()
        .args_override_self(true)
        .try_get_matches_from(all)
        .map_err(LoadError::Args)?;
    let config = Config::from_arg_matches(&m).map_err(LoadError::Args)?;
    Ok((config, raw_values(&m)))
}

/// A vhost's own list replaces the inherited one, from the file or the command line:
/// clap appends the values of a repeatable flag however often it is given, so the
/// command line's `--error-page` would otherwise be added to the vhost's own.
fn own_lists(config: &mut Config, own: &BTreeMap<String, KeyArgs>) -> Result<(), LoadError> {
    for key in ["header", "error-page"] {
        let Some(a) = own.get(key) else { continue };
        let argv = std::iter::once(OsString::from("hearth")).chain(a.args.iter().cloned());
        let m = Config::command()
            .try_get_matches_from(argv)
            .map_err(LoadError::Args)?;
        let alone = Config::from_arg_matches(&m).map_err(LoadError::Args)?;
        match key {
            "header" => config.headers = alone.headers,
            _ => config.error_pages = alone.error_pages,
        }
    }
    Ok(())
}

/// Every flag's raw values in `m`, by long name.
fn raw_values(m: &ArgMatches) -> BTreeMap<String, Vec<OsString>> {
    let cmd = Config::command();
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let raw = m.try_get_raw(a.get_id().as_str()).ok().flatten();
            Some((
                long.to_string(),
                raw.map(|r| r.map(|v| v.to_owned()).collect())
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

/// Where each line of a text starts, so the line of a byte offset is a binary
/// search: parsing stays linear however many keys the file has.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Lines { starts }
    }

    /// Line (from 1) of byte `offset`.
    fn of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

/// An error about `key` at `line` of `path`.
fn at(path: &Path, line: usize, key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{}:{line}: {key}: {msg}", path.display()))
}

fn first_line(s: &str) -> &str {
    let s = s.trim_start_matches("error: ");
    s.lines().next().unwrap_or(s).trim()
}

/// Parses the TOML text and checks every key.
fn parse_file(path: &Path, source: &str) -> Result<File, ConfigError> {
    let text = &Lines::new(source);
    let doc = DeTable::parse(source).map_err(|e| {
        let line = e.span().map_or(1, |s| text.of(s.start));
        ConfigError(format!("{}:{line}: {}", path.display(), e.message()))
    })?;
    let cmd = Config::command();
    let mut file = File {
        keys: BTreeMap::new(),
        vhosts: Vec::new(),
        rules: Vec::new(),
    };
    for (k, v) in doc.get_ref() {
        let key: &str = k.get_ref();
        let line = text.of(k.span().start);
        match key {
            "vhost" => {
                for t in tables(path, line, key, v)? {
                    let v = vhost(&cmd, path, text, t)?;
                    if let Some(first) = file.vhosts.iter().find(|f| f.host == v.host) {
                        let msg = format!(
                            "vhost {:?} is given twice (first at line {})",
                            v.host, first.host_line
                        );
                        return Err(at(path, v.host_line, "host", msg));
                    }
                    file.vhosts.push(v);
                }
            }
            "headers" => file.rules = rules(path, text, line, key, v)?,
            _ => {
                let args = key_args(&cmd, key, v.get_ref()).map_err(|m| at(path, line, key, m))?;
                file.keys.insert(key.to_string(), KeyArgs { args, line });
            }
        }
    }
    Ok(file)
}

/// The tables of an array of tables (`[[name]]`).
fn tables<'a, 'i>(
    path: &Path,
    line: usize,
    key: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Result<Vec<&'a Spanned<DeValue<'i>>>, ConfigError> {
    let wrong = || at(path, line, key, format!("expected [[{key}]] tables"));
    let arr = v.get_ref().as_array().ok_or_else(wrong)?;
    if arr.iter().any(|t| !t.get_ref().is_table()) {
        return Err(wrong());
    }
    Ok(arr.iter().collect())
}

/// One `[[vhost]]` table: `host`, per-site keys, `[[vhost.headers]]`.
fn vhost(
    cmd: &clap::Command,
    path: &Path,
    text: &Lines,
    t: &Spanned<DeValue<'_>>,
) -> Result<RawVhost, ConfigError> {
    let table_line = text.of(t.span().start);
    let mut v = RawVhost {
        host: String::new(),
        host_line: table_line,
        keys: BTreeMap::new(),
        rules: None,
        line: table_line,
    };
    for (k, val) in t.get_ref().as_table().into_iter().flatten() {
        let key: &str = k.get_ref();
        let line = text.of(k.span().start);
        match key {
            "host" => match val.get_ref().as_str() {
                Some(h) => {
                    v.host = vhost_name(h).map_err(|m| at(path, line, "host", m))?;
                    v.host_line = line;
                }
                None => return Err(at(path, line, "host", "expected a host name string")),
            },
            "headers" => v.rules = Some(rules(path, text, line, "vhost.headers", val)?),
            _ if !SITE_KEYS.contains(&key) && is_flag(cmd, key) => {
                let msg = "not allowed in [[vhost]]: it applies to the whole server";
                return Err(at(path, line, key, msg));
            }
            _ => {
                let args = key_args(cmd, key, val.get_ref()).map_err(|m| at(path, line, key, m))?;
                v.keys.insert(key.to_string(), KeyArgs { args, line });
            }
        }
    }
    if v.host.is_empty() {
        return Err(at(path, table_line, "vhost", "missing `host = \"name\"`"));
    }
    Ok(v)
}

/// A `[[vhost]]` host name as requests will be compared with it: lower case, without
/// the root's trailing dot. Refuses what no `Host` could ever match: a port (the
/// server answers every port it listens on), spaces, control characters, anything
/// outside a DNS name, an IPv4 address or an IPv6 address (without brackets).
fn vhost_name(h: &str) -> Result<String, String> {
    let name = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(name);
    }
    let why = if name.is_empty() {
        "expected a host name"
    } else if name.contains(':') {
        "a host name without a port: a vhost answers on every port the server listens on"
    } else if name.starts_with('.') || name.contains("..") {
        "an empty label can never match a Host"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        "letters, digits, '-', '_' and '.' only: a Host holding anything else is refused"
    } else {
        return Ok(name);
    };
    Err(format!("{h:?}: {why}"))
}

/// `[[headers]]` tables: `path = "/glob"`, `set = { "Name" = "value" }`.
fn rules(
    path: &Path,
    text: &Lines,
    line: usize,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<Vec<PathRule>, ConfigError> {
    let mut out = Vec::new();
    for t in tables(path, line, key, v)? {
        let line = text.of(t.span().start);
        let (mut glob, mut set) = (None, Vec::new());
        for (k, val) in t.get_ref().as_table().into_iter().flatten() {
            let name: &str = k.get_ref();
            let kline = text.of(k.span().start);
            match (name, val.get_ref()) {
                ("path", DeValue::String(p)) => glob = Some(p.to_string()),
                ("set", DeValue::Table(h)) => {
                    for (hn, hv) in h {
                        let Some(value) = hv.get_ref().as_str() else {
                            return Err(at(path, kline, "set", "header values are strings"));
                        };
                        set.push((hn.get_ref().to_string(), value.to_string()));
                    }
                }
                ("path", _) => return Err(at(path, kline, name, "expected a string")),
                ("set", _) => return Err(at(path, kline, name, "expected a table")),
                _ => return Err(at(path, kline, name, format!("unknown key in [[{key}]]"))),
            }
        }
        let glob = glob.ok_or_else(|| at(path, line, key, "missing `path = \"/glob\"`"))?;
        out.push(PathRule::new(&glob, &set).map_err(|e| at(path, line, key, e))?);
    }
    Ok(out)
}

/// Whether `key` is the long name of a flag of `cmd`.
fn is_flag(cmd: &clap::Command, key: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_long() == Some(key))
}

/// The command-line arguments one file key stands for, checked by parsing them
/// alone; the error is a message without the key and line.
pub fn key_args(cmd: &clap::Command, key: &str, v: &DeValue<'_>) -> Result<Vec<OsString>, String> {
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(key) && !NOT_KEYS.contains(&key))
        .ok_or_else(|| "unknown key".to_string())?;
    let flag = matches!(arg.get_action(), ArgAction::SetTrue);
    let scalar = |v: &DeValue<'_>| -> Result<String, String> {
        match v {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .map(|n| n.to_string())
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "expected a string or an integer, not {}",
                other.type_str()
            )),
        }
    };
    // Switches spelled `on|off` on the command line take a TOML boolean as well.
    let on_off = arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "on|off"));
    let args = match v {
        DeValue::Boolean(b) if on_off => {
            vec![format!("--{key}={}", if *b { "on" } else { "off" })]
        }
        DeValue::Boolean(true) => vec![format!("--{key}")],
        DeValue::Boolean(false) if flag => Vec::new(),
        DeValue::Boolean(false) => return Err("expected a value, not false".into()),
        DeValue::Array(items) => items
            .iter()
            .map(|i| scalar(i.get_ref()).map(|s| format!("--{key}={s}")))
            .collect::<Result<_, _>>()?,
        _ if flag => return Err(format!("expected true or false, not {}", v.type_str())),
        other => vec![format!("--{key}={}", scalar(other)?)],
    };
    let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    let argv = std::iter::once(OsString::from("hearth")).chain(args.iter().cloned());
    match cmd.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(args),
        Err(e) => Err(first_line(&e.to_string()).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(toml_value: &str, key: &str) -> Result<Vec<String>, String> {
        let text = format!("{key} = {toml_value}");
        let doc = DeTable::parse(&text).unwrap();
        let (_, v) = doc.get_ref().iter().next().unwrap();
        let out = key_args(&Config::command(), key, v.get_ref())?;
        Ok(out.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn values_become_flags() {
        assert_eq!(args("8080", "port").unwrap(), ["--port=8080"]);
        assert_eq!(args("0x10", "port").unwrap(), ["--port=16"]);
        assert_eq!(args("\"/srv\"", "root").unwrap(), ["--root=/srv"]);
        assert_eq!(args("true", "autoindex").unwrap(), ["--autoindex"]);
        assert_eq!(
            args("false", "precompressed").unwrap(),
            ["--precompressed=off"]
        );
        assert_eq!(
            args("\"on\"", "precompressed").unwrap(),
            ["--precompressed=on"]
        );
        assert!(args("false", "autoindex").unwrap().is_empty());
        assert_eq!(args("true", "cors").unwrap(), ["--cors"]);
        assert_eq!(
            args("[\"A: 1\", \"B: 2\"]", "header").unwrap(),
            ["--header=A: 1", "--header=B: 2"]
        );
        assert_eq!(
            args("[\"::1\", \"127.0.0.1\"]", "bind").unwrap(),
            ["--bind=::1", "--bind=127.0.0.1"]
        );
        // A value starting with '-' stays a value.
        assert_eq!(
            args("\"-x\"", "cache-control").unwrap(),
            ["--cache-control=-x"]
        );
    }

    #[test]
    fn bad_keys_and_values() {
        assert_eq!(args("1", "nonsense").unwrap_err(), "unknown key");
        assert_eq!(args("\"x\"", "config").unwrap_err(), "unknown key");
        assert!(args("\"abc\"", "port")
            .unwrap_err()
            .contains("invalid value"));
        assert!(args("70000", "port").unwrap_err().contains("invalid value"));
        assert!(args("\"yes\"", "autoindex")
            .unwrap_err()
            .contains("true or false"));
        assert!(args("false", "port").unwrap_err().contains("not false"));
        assert!(args("1.5", "port").unwrap_err().contains("float"));
        assert!(args("[1, 2]", "port").is_err());
        assert!(args("{ a = 1 }", "root").is_err());
    }

    #[test]
    fn file_errors_name_key_and_line() {
        let p = Path::new("h.toml");
        let e = |t: &str| parse_file(p, t).err().unwrap().0;
        assert_eq!(e("port = 1\nbogus = 2\n"), "h.toml:2: bogus: unknown key");
        assert!(e("\n\nport = \"x\"\n").starts_with("h.toml:3: port: invalid value"));
        assert!(e("[[vhost]]\nhost = \"a\"\nthreads = 2\n").starts_with("h.toml:3: threads"));
        assert!(e("[[vhost]]\nroot = \"/\"\n").contains("missing `host"));
        let reserved = "[[headers]]\npath = \"/**\"\nset = { Connection = \"x\" }\n";
        assert!(e(reserved).starts_with("h.toml:1: headers:"));
        assert!(e("port = \n").starts_with("h.toml:1:"));
        let ok = "port = 1\n[[headers]]\npath = \"/a/**\"\nset = { X-A = \"1\" }\n\
                  [[vhost]]\nhost = \"a.example\"\nroot = \"/tmp\"\n";
        let f = parse_file(p, ok).unwrap();
        assert_eq!((f.rules.len(), f.vhosts.len()), (1, 1));
        assert_eq!(f.vhosts[0].keys["root"].line, 7);
    }
}
