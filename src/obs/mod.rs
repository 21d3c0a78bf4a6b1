//! Observability: the server log and the access log (`logging`), the counters
//! behind the statistics page (`stats`), the page as text and JSON (`page`), and
//! the same in Prometheus's format (`prometheus`).
//!
//! May import: `config`, `http`, `sys`, `clock`, `format`, `throttle`.

pub mod logging;
pub mod page;
pub mod prometheus;
pub mod stats;
