#!/usr/bin/env python3
"""Idle keep-alive connection holder for scripts/bench.sh.

Opens N TCP connections to HOST:PORT, sends one keep-alive HTTP/1.1 GET on
each and reads the complete response, then holds every connection open.

Protocol on stdout/stdin (so the caller can sample server memory while the
connections are held):

    -> "ready OPEN FAILED"   all connections attempted; OPEN completed a request
    <- "check"               (line on stdin) count connections still open
    -> "alive N"
    <- EOF on stdin          close everything (with RST, so no TIME_WAIT piles
                             up on the client side) and exit

Diagnostics go to stderr. Exit status 0 unless arguments are bad or nothing
could be opened at all.
"""

import argparse
import errno
import os
import resource
import select
import socket
import struct
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


class Conn:
    __slots__ = ("sock", "state", "buf", "need", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.buf = b""
        self.need = None  # total bytes (header + body) once headers are parsed
        self.sent = 0


def parse_need(buf):
    """Return total response length once the header block is complete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return end + 4 + length


def open_batch(host, port, count, request, deadline, log):
    """Open `count` connections, complete one request on each. Returns the
    list of sockets that finished a request and the number that failed."""
    ep = select.epoll()
    conns = {}
    failed = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            log("connect: %s" % os.strerror(err))
            s.close()
            failed += 1
            continue
        c = Conn(s)
        conns[s.fileno()] = c
        ep.register(s.fileno(), select.EPOLLOUT)
    done = []
    while conns and time.monotonic() < deadline:
        for fd, ev in ep.poll(0.5):
            c = conns.get(fd)
            if c is None:
                continue
            try:
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    c.state = "sending"
                if c.state == "sending":
                    c.sent += c.sock.send(request[c.sent:])
                    if c.sent == len(request):
                        c.state = "reading"
                        ep.modify(fd, select.EPOLLIN)
                    continue
                if c.state == "reading":
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        raise OSError(errno.ECONNRESET, "closed before full response")
                    c.buf += chunk
                    if c.need is None:
                        c.need = parse_need(c.buf)
                    if c.need is not None and len(c.buf) >= c.need:
                        if not c.buf.startswith(b"HTTP/1.1 2"):
                            raise OSError(errno.EPROTO, "status: %r" % c.buf[:20])
                        ep.unregister(fd)
                        del conns[fd]
                        c.buf = b""
                        done.append(c.sock)
            except BlockingIOError:
                pass
            except OSError as e:
                log("conn: %s" % e)
                failed += 1
                ep.unregister(fd)
                del conns[fd]
                c.sock.close()
    for c in conns.values():  # timed out
        failed += 1
        c.sock.close()
    ep.close()
    return done, failed


def count_alive(socks):
    alive = 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:  # unexpected bytes, but still open
                alive += 1
            # b"" means the peer closed it
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=1000,
                    help="connections opened concurrently (accept backlog friendly)")
    ap.add_argument("--open-timeout", type=float, default=60.0,
                    help="seconds allowed for opening all connections")
    ap.add_argument("--hold", type=float, default=300.0,
                    help="give up and exit after this many seconds of holding")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()

    def log(msg):
        if not a.quiet:
            print("bench-idle: " + msg, file=sys.stderr)

    limit = raise_nofile(a.conns + 64)
    if limit < a.conns + 16:
        log("RLIMIT_NOFILE %d is too low for %d connections; capping" % (limit, a.conns))
        a.conns = max(0, limit - 16)

    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: bench-idle\r\n"
               "Connection: keep-alive\r\n\r\n" % (a.path, a.host, a.port)).encode()
    deadline = time.monotonic() + a.open_timeout
    held, failed, left = [], 0, a.conns
    while left > 0 and time.monotonic() < deadline:
        n = min(a.batch, left)
        done, f = open_batch(a.host, a.port, n, request, deadline, log)
        held += done
        failed += f
        left -= n
    failed += left
    print("ready %d %d" % (len(held), failed), flush=True)
    if not held:
        return 1

    linger = struct.pack("ii", 1, 0)
    end = time.monotonic() + a.hold
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([sys.stdin], [], [], 1.0)
            if not r:
                continue
            line = sys.stdin.readline()
            if not line:
                break
            if line.strip() == "check":
                print("alive %d" % count_alive(held), flush=True)
    finally:
        for s in held:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            except OSError:
                pass
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
