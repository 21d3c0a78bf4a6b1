//! Configuration: the command line (`flags`), the TOML file (`file`: read as a
//! spanned tree by `table`, its tables sorted by `parse` into the typed structs of
//! `keys`, applied onto the flags by `apply`, each site described by a `spec`), the
//! validated process-wide `settings`, the sites a request is answered from (`site`,
//! picked by host in `sites`, with their `routes`: try-files and error pages, and
//! their `redirect` rules), the SIGHUP `reload` that builds new sites from the
//! file, and the HTTPS certificates (`tls`).
//!
//! May import: `files`, `http`, `sys`, `clock`, `format`, `throttle`.

pub mod access_log;
pub mod apply;
pub mod auth;
pub mod file;
pub mod flags;
pub mod keys;
pub mod parse;
pub mod redirect;
pub mod reload;
pub mod routes;
pub mod settings;
pub mod site;
pub mod sites;
pub mod spec;
pub mod table;
pub mod tls;

pub use flags::Config;
