//! The driver: the threads and the connections they pass between them.
//!
//! `server` binds the sockets and starts the reactors and workers; a `reactor` runs
//! one epoll loop (accept, read, deadlines) and hands ready connections to the
//! `worker` pool through the queue; a worker drives one connection (read → parse →
//! respond → write) and re-arms it. `conn` is one connection with its state, its
//! deadline and the transport it reads and writes through (plain, or `tls`);
//! `shared`, `slots` and `timer` hold what reactors and workers share; `upgrade`
//! hands the listening sockets to a new process on SIGUSR2.
//!
//! May import: `serve`, `obs`, `config`, `files`, `http`, `sys`, `clock`, `format`, `throttle`.
//! Nothing else imports the driver but `lib.rs`.

pub mod conn;
pub mod listen;
pub mod reactor;
pub mod server;
pub mod shared;
pub mod slots;
pub mod timer;
pub mod tls;
pub mod transport;
pub mod upgrade;
pub mod worker;
