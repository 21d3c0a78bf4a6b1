//! Serving: from a parsed request to a planned response. `handler` answers files,
//! directory redirects and listings, the health and statistics pages and OPTIONS;
//! `routes` runs a site's try-files and error pages; `reply` builds the response
//! head and body; `multipart` the body of a response with several ranges. Serving knows nothing of sockets, threads or connection state:
//! the driver hands it a request and the running server's [`handler::Context`], and
//! sends what it plans.
//!
//! May import: `obs`, `config`, `files`, `http`, `sys`, `clock`, `format`, `throttle`.

pub mod handler;
pub mod multipart;
pub mod reply;
pub mod routes;
