//! Observability: the server log and the access log (`logging`), and the counters
//! behind the statistics page (`stats`).
//!
//! May import: `config`, `http`, `sys`, `clock`, `format`.

pub mod logging;
pub mod stats;
