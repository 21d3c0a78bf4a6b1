#!/usr/bin/env python3
"""Counts failed requests while a command runs (a restart, say).

Usage: scripts/restart-loop.py [--url URL] [--clients N] [--settle S] -- COMMAND...

Starts N client threads that each GET URL on a new connection, one request after
the other, waits --settle seconds, runs COMMAND, waits --settle seconds again,
then stops the clients and prints how many requests were sent and how many
failed (refused, reset, timed out, or not a 200), with the first few errors.
Exit status: COMMAND's when it failed, else 1 if any request failed, else 0.
Every request has a 5 s timeout; the clients stop within that after COMMAND.
"""

import argparse
import http.client
import subprocess
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8888/")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--settle", type=float, default=0.5)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    url = urllib.parse.urlsplit(args.url)
    path = url.path or "/"
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"sent": 0, "failed": 0}
    errors = []

    def client():
        while not stop.is_set():
            conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
            err = None
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    err = f"status {resp.status}"
            except (OSError, http.client.HTTPException) as e:
                err = f"{type(e).__name__}: {e}"
            finally:
                conn.close()
            with lock:
                counts["sent"] += 1
                if err:
                    counts["failed"] += 1
                    if len(errors) < 5:
                        errors.append(err)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.settle)
    rc = subprocess.call(command)
    time.sleep(args.settle)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    print(f"{counts['sent']} requests, {counts['failed']} failed "
          f"({args.clients} clients, a new connection per request)")
    for e in errors:
        print(f"  {e}")
    if rc != 0:
        return rc
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
