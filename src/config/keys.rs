//! The configuration file's keys as typed structs (`serde`): what each table may
//! hold and the type of each value. `file.rs` splits a table's keys into these groups
//! (so a key in the wrong table gets its own message) and deserializes each group;
//! every value keeps its span, so a later check can still name its line.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub use crate::config::access_log::LogFormat;
pub use crate::config::flags::AcceptSpread;

/// An optional key with its place in the file.
pub type Key<T> = Option<Spanned<T>>;

/// Keys that apply to the whole process (top level only; a change needs a restart,
/// except `log-level`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessKeys {
    pub port: Key<u16>,
    pub bind: Key<Items<IpAddr>>,
    pub threads: Key<usize>,
    pub reactors: Key<usize>,
    pub timeout: Key<u64>,
    pub header_timeout: Key<u64>,
    pub grace: Key<u64>,
    pub max_conns: Key<usize>,
    pub backlog: Key<i32>,
    pub max_uri: Key<usize>,
    pub max_header: Key<usize>,
    pub max_body: Key<u64>,
    pub log_level: Key<Level>,
    pub log_dir: Key<PathBuf>,
    pub close_log: Key<bool>,
    pub log_async: Key<bool>,
    pub access_log: Key<String>,
    pub log_format: Key<LogFormat>,
    pub pid_file: Key<PathBuf>,
    pub stats_path: Key<String>,
    pub metrics_path: Key<String>,
    pub stats_allow: Key<Items<String>>,
    pub health_path: Key<String>,
    pub reuseport: Key<bool>,
    pub accept_spread: Key<AcceptSpread>,
    pub defer_accept: Key<u32>,
    pub defer_write: Key<bool>,
    pub compress_cache: Key<Size>,
    pub tls_port: Key<u16>,
    pub redirect_https: Key<bool>,
}

/// What one site answers with: top level (the default site), `[defaults]`,
/// `[[vhost]]`. `[[location]]` holds a subset ([`LOCATION_KEYS`]).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteKeys {
    pub root: Key<PathBuf>,
    pub follow_symlinks: Key<bool>,
    pub autoindex: Key<bool>,
    pub cors: Key<Cors>,
    pub cache_control: Key<String>,
    pub header: Key<Items<String>>,
    pub try_files: Key<String>,
    pub error_page: Key<Items<String>>,
    pub precompressed: Key<OnOff>,
    pub precompressed_check: Key<OnOff>,
    pub compress: Key<OnOff>,
    pub compress_types: Key<Items<String>>,
    pub compress_min: Key<u64>,
    pub tls_cert: Key<PathBuf>,
    pub tls_key: Key<PathBuf>,
    pub auth_basic: Key<String>,
    pub auth_basic_user_file: Key<PathBuf>,
    /// In a `[[vhost]]` only ([`VHOST_LOG_KEYS`]): its own access log.
    pub access_log: Key<String>,
    /// In a `[[vhost]]` only: the format of its own access log.
    pub log_format: Key<LogFormat>,
    /// `[[headers]]`: headers by path glob.
    #[serde(default)]
    pub headers: Vec<Spanned<RuleKeys>>,
}

/// Site keys a `[[location]]` may set; the rest of a site's keys are refused there.
pub const LOCATION_KEYS: &[&str] = &[
    "try-files",
    "error-page",
    "cache-control",
    "header",
    "autoindex",
    "cors",
    "precompressed",
    "auth-basic",
    "auth-basic-user-file",
];

/// Keys of [`SiteKeys`] a `[[vhost]]` may set but that are process-wide at the top
/// level (the main access log) and not allowed in `[defaults]`.
pub const VHOST_LOG_KEYS: &[&str] = &["access-log", "log-format"];

/// Every key of [`SiteKeys`] (what a `[[vhost]]` or `[defaults]` may set).
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
    "headers",
];

/// Every key of [`ProcessKeys`].
pub const PROCESS_KEYS: &[&str] = &[
    "port",
    "bind",
    "threads",
    "reactors",
    "timeout",
    "header-timeout",
    "grace",
    "max-conns",
    "backlog",
    "max-uri",
    "max-header",
    "max-body",
    "log-level",
    "log-dir",
    "close-log",
    "log-async",
    "access-log",
    "log-format",
    "pid-file",
    "stats-path",
    "metrics-path",
    "stats-allow",
    "health-path",
    "reuseport",
    "accept-spread",
    "defer-accept",
    "defer-write",
    "compress-cache",
    "tls-port",
    "redirect-https",
];

/// A `[[vhost]]` table's own keys besides the site's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostKeys {
    /// One name or several; `*.example.com` for every subdomain.
    pub host: Spanned<Items<String>>,
    /// The site for requests whose host no site names.
    #[serde(default)]
    pub default: Option<Spanned<bool>>,
}

/// A `[[location]]` table's own key besides the site keys it may set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationPath {
    /// The path prefix it covers, starting with `/`.
    pub path: Spanned<String>,
}

/// One `[[redirect]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectKeys {
    /// A regular expression matched against the request path.
    pub from: Spanned<String>,
    /// Where to: a path or an absolute URL, with `$1`..`$9` and `$host`.
    pub to: Spanned<String>,
    /// 301 (the default), 302, 307 or 308.
    #[serde(default)]
    pub status: Option<Spanned<u16>>,
}

/// One `[[headers]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleKeys {
    /// A glob over the path of the file served (`/assets/**`).
    pub path: String,
    /// Header names and values.
    pub set: std::collections::BTreeMap<String, String>,
}

/// A list given as one value or an array of values (`host = "a"` or `["a", "b"]`),
/// each a string parsed as `T`.
#[derive(Debug, Clone)]
pub struct Items<T>(pub Vec<T>);

impl<'de, T: FromStr> Deserialize<'de> for Items<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FromStr> Visitor<'de> for V<T>
        where
            T::Err: fmt::Display,
        {
            type Value = Items<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Items<T>, E> {
                Ok(Items(vec![parse(s)?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(parse(&s)?);
                }
                Ok(Items(out))
            }
        }
        fn parse<T: FromStr, E: de::Error>(s: &str) -> Result<T, E>
        where
            T::Err: fmt::Display,
        {
            s.parse().map_err(|e| E::custom(format!("{s:?}: {e}")))
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `cors = true` (any origin), `false` (off) or an origin.
#[derive(Debug, Clone)]
pub struct Cors(pub Option<String>);

impl<'de> Deserialize<'de> for Cors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cors;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or an origin such as \"https://a.example\"")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Cors, E> {
                Ok(Cors(b.then(|| "*".to_string())))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cors, E> {
                Ok(Cors(Some(s.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A switch: `true`/`false`, or `"on"`/`"off"` as on the command line.
#[derive(Debug, Clone, Copy)]
pub struct OnOff(pub bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OnOff;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, \"on\" or \"off\"")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<OnOff, E> {
                Ok(OnOff(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OnOff, E> {
                match s {
                    "on" => Ok(OnOff(true)),
                    "off" => Ok(OnOff(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LogFormat;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"combined\" or \"json\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LogFormat, E> {
                match s {
                    "combined" => Ok(LogFormat::Combined),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `log-level`: off, error, warn, info, debug or trace, in any case.
#[derive(Debug, Clone, Copy)]
pub struct Level(pub log::LevelFilter);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Level, E> {
                s.parse()
                    .map(Level)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: an integer, or a string with a K, M or G suffix (`"64M"`).
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a string such as \"64M\" (K, M or G)")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                crate::config::flags::size(s).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}
