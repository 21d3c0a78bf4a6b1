//! hearth: a static-file HTTP/1.1 server built as epoll reactor threads (the main
//! thread, and more with `--reactors`) feeding a pool of worker threads.
//!
//! ```text
//!            accept, read                 process(): parse, resolve, write
//! clients -> [reactor: epoll_wait] --queue--> [worker 1..N] --re-arm (EPOLLONESHOT)--+
//!               ^                                                                   |
//!               +------------------------- slot table <------------------------------+
//! ```

pub mod clock;
pub mod config;
pub mod config_file;
pub mod conn;
pub mod files;
pub mod format;
pub mod handler;
pub mod http;
pub mod logging;
pub mod multipart;
pub mod reactor;
pub mod reload;
pub mod reply;
pub mod routes;
pub mod server;
pub mod settings;
pub mod shared;
pub mod site;
pub mod slots;
pub mod stats;
pub mod sys;
pub mod timer;
pub mod upgrade;
pub mod worker;

pub use config::Config;
pub use server::{Server, StartError, Stopper};
