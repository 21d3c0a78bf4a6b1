//! hearth: a static-file HTTP/1.1 server built as epoll reactor threads (the main
//! thread, and more with `--reactors`) feeding a pool of worker threads.
//!
//! ```text
//!            accept, read                 process(): parse, resolve, write
//! clients -> [reactor: epoll_wait] --queue--> [worker 1..N] --re-arm (EPOLLONESHOT)--+
//!               ^                                                                   |
//!               +------------------------- slot table <------------------------------+
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod clock;
pub mod config;
pub mod driver;
pub mod files;
pub mod format;
pub mod http;
pub mod obs;
pub mod serve;
pub mod sys;
pub mod throttle;

pub use config::Config;
pub use driver::server::{Server, StartError, Stopper};
