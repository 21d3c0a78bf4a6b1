//! The listening sockets: every address bound (or adopted from the process that
//! started this one on SIGUSR2), and which reactor watches which socket.
//!
//! With several reactors the default ([`AcceptSpread::Reuseport`]) gives each reactor a
//! `SO_REUSEPORT` socket of its own per address, so the kernel spreads connections
//! by a hash of their addresses; [`AcceptSpread::Exclusive`] keeps one socket watched by
//! every reactor with `EPOLLEXCLUSIVE`, which wakes the reactor that waited last.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::config::flags::AcceptSpread;
use crate::driver::reactor::MAX_LISTENERS;
use crate::driver::upgrade;
use crate::sys;

/// One listening socket as a reactor watches it.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// Its index in [`Listeners::all`].
    pub socket: usize,
    /// Whether it serves TLS.
    pub tls: bool,
    /// Extra epoll flags: `EPOLLEXCLUSIVE` when several reactors watch it.
    pub flags: u32,
}

/// What one reactor watches, and every socket of the process.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Every listening socket of the process, shared by the reactors; a new
    /// process started on SIGUSR2 is handed all of them.
    pub all: Arc<[TcpListener]>,
    /// The sockets this reactor accepts from.
    pub watch: Vec<Watch>,
}

impl Listeners {
    /// The socket of `watch`.
    pub fn socket(&self, watch: &Watch) -> Option<&TcpListener> {
        self.all.get(watch.socket)
    }
}

/// How to bind.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Reactors that will accept.
    pub reactors: usize,
    /// How they share an address.
    pub spread: AcceptSpread,
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// `--reuseport`: other processes may share the port.
    pub reuseport: bool,
    /// `--defer-accept` seconds.
    pub defer_accept: u32,
}

/// The bound sockets.
pub struct Bound {
    /// Per reactor, in reactor order.
    pub reactors: Vec<Listeners>,
    /// Each configured address as bound (the real port when 0 was asked for), and
    /// whether it serves TLS, in configuration order.
    pub local: Vec<(SocketAddr, bool)>,
}

/// A failure, with what was being done.
pub type BindError = (String, io::Error);

/// Binds every `(address, tls)`, adopting sockets from `inherited` where one
/// listens on the address already.
pub fn bind_all(
    addrs: &[(SocketAddr, bool)],
    opts: &Options,
    inherited: &mut Vec<TcpListener>,
) -> Result<Bound, BindError> {
    let any_v4 = addrs.iter().any(|(a, _)| a.is_ipv4());
    let reactors = opts.reactors.max(1);
    let mut all: Vec<TcpListener> = Vec::new();
    let mut local: Vec<(SocketAddr, bool)> = Vec::with_capacity(addrs.len());
    let mut watch: Vec<Vec<Watch>> = vec![Vec::new(); reactors];
    for (i, &(addr, tls)) in addrs.iter().enumerate() {
        let mut addr = addr;
        // Port 0: every address gets the port the first one of its kind got.
        let first_of_kind = addrs.iter().position(|(_, t)| *t == tls).unwrap_or(i);
        if addr.port() == 0 && first_of_kind < i {
            addr.set_port(local[first_of_kind].0.port());
        }
        let group = group_for(addr, v6only(&addr, any_v4), opts, inherited)
            .map_err(|e| (format!("listen on {addr}"), e))?;
        let bound = group[0]
            .local_addr()
            .map_err(|e| ("local address".to_string(), e))?;
        local.push((bound, tls));
        assign(&mut watch, all.len(), group.len(), tls);
        all.extend(group);
    }
    if watch.iter().any(|w| w.len() > MAX_LISTENERS) {
        let e = io::Error::other(format!("more than {MAX_LISTENERS} sockets per reactor"));
        return Err(("listening".to_string(), e));
    }
    let all: Arc<[TcpListener]> = all.into();
    let reactors = watch
        .into_iter()
        .map(|watch| Listeners {
            all: all.clone(),
            watch,
        })
        .collect();
    Ok(Bound { reactors, local })
}

/// The sockets for one address: those inherited for it, or a new one; with
/// [`AcceptSpread::Reuseport`], more joining its port until each reactor has one (when
/// the first has `SO_REUSEPORT`; an inherited socket without it is shared with
/// `EPOLLEXCLUSIVE` instead).
fn group_for(
    addr: SocketAddr,
    v6only: bool,
    opts: &Options,
    inherited: &mut Vec<TcpListener>,
) -> io::Result<Vec<TcpListener>> {
    let per_reactor = opts.spread == AcceptSpread::Reuseport && opts.reactors > 1;
    let listen = sys::ListenOptions {
        backlog: opts.backlog,
        reuseport: opts.reuseport || per_reactor,
        v6only,
        defer_accept: opts.defer_accept,
    };
    let mut group = upgrade::take_all(inherited, addr);
    if group.is_empty() {
        let mut addr = addr;
        if per_reactor && !opts.reuseport {
            // SO_REUSEPORT would let this server join another one's port without a
            // word: a port something listens on is refused, as without it.
            addr = sys::probe_bind(addr, v6only)?;
        }
        group.push(sys::listen(addr, listen)?);
    }
    if per_reactor && sys::reuseport_enabled(&group[0]) {
        let addr = group[0].local_addr()?;
        while group.len() < opts.reactors {
            group.push(sys::listen(addr, listen)?);
        }
    }
    Ok(group)
}

/// Gives `count` sockets starting at index `at` to the reactors: one reactor each
/// when there are enough (round robin), else every reactor watches every one with
/// `EPOLLEXCLUSIVE`.
fn assign(watch: &mut [Vec<Watch>], at: usize, count: usize, tls: bool) {
    let reactors = watch.len();
    if count >= reactors {
        for j in 0..count {
            watch[j % reactors].push(Watch {
                socket: at + j,
                tls,
                flags: 0,
            });
        }
        return;
    }
    for w in watch.iter_mut() {
        for j in 0..count {
            w.push(Watch {
                socket: at + j,
                tls,
                flags: sys::EV_EXCLUSIVE,
            });
        }
    }
}

/// Whether the socket for `addr` takes IPv6 only: all but a `::` with no IPv4 bind.
fn v6only(addr: &SocketAddr, any_v4: bool) -> bool {
    !(addr.is_ipv6() && addr.ip().is_unspecified() && !any_v4)
}
