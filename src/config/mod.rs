//! Configuration: the command line (`flags`), the TOML file (`file`), the validated
//! process-wide `settings`, the sites a request is answered from (`site`, with their
//! `routes`: try-files and error pages), the SIGHUP `reload` that builds new
//! sites from the file, and the HTTPS certificates (`tls`).
//!
//! May import: `files`, `http`, `sys`, `clock`, `format`.

pub mod access_log;
pub mod auth;
pub mod file;
pub mod flags;
pub mod reload;
pub mod routes;
pub mod settings;
pub mod site;
pub mod tls;

pub use flags::Config;
