#!/usr/bin/env bash
# scripts/reactor-share.sh (also `scripts/bench.sh --reactor-share`): where a
# request's CPU time goes, thread by thread, for hearth and nginx in the same run.
#
# For each server and workload it reads every thread's CPU time
# (/proc/PID/task/TID/schedstat, nanoseconds) before and after a wrk run and
# divides by the requests wrk completed. Workloads: keep-alive (wrk -c100) and
# Connection: close (one connection per request, as webbench does). It prints
# CPU per request by thread class (reactor, worker, log), the busiest thread, and
# projections of the request rate on 8 and 16 cores:
#   hearth: min(C * 1e6 / total us per request, R * 1e6 / reactor us per request)
#           with R reactors sharing the reactor work evenly (R = the default for C)
#   nginx:  C * 1e6 / worker us per request (independent workers)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
HEARTH_BIN=${HEARTH_BIN:-$REPO_DIR/target/release/hearth}
THREADS=$(nproc)
REACTORS="1"
DURATION=5
CONNS=100
ROUNDS=2
CPUS_SERVER=""
CPUS_CLIENT=""

usage() {
    cat <<'USAGE'
Usage: scripts/reactor-share.sh [options]
  --threads N        hearth --threads (default: nproc)
  --reactors LIST    hearth --reactors values to run, comma separated (default 1)
  --duration S       seconds per wrk run (default 5)
  --connections N    wrk -c (default 100)
  --rounds N         rounds; the median per figure is printed (default 2)
  --cpus-server L    taskset CPU list for the servers
  --cpus-client L    taskset CPU list for wrk
  --hearth-bin PATH  binary (default target/release/hearth; built if missing)
USAGE
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --threads) THREADS=$2; shift 2 ;;
        --reactors) REACTORS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --cpus-server) CPUS_SERVER=$2; shift 2 ;;
        --cpus-client) CPUS_CLIENT=$2; shift 2 ;;
        --hearth-bin) HEARTH_BIN=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "reactor-share.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

for tool in wrk nginx python3; do
    command -v "$tool" >/dev/null || { echo "reactor-share.sh: $tool is not installed" >&2; exit 2; }
done
if [[ ! -x $HEARTH_BIN ]]; then
    (cd "$REPO_DIR" && cargo build --release >&2)
fi
SERVER_PIN=()
CLIENT_PIN=()
[[ -z $CPUS_SERVER ]] || SERVER_PIN=(taskset -c "$CPUS_SERVER")
[[ -z $CPUS_CLIENT ]] || CLIENT_PIN=(taskset -c "$CPUS_CLIENT")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearth-share.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"
chmod -R a+rX "$TMP/www"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "reactor-share.sh: nothing listening on $1" >&2
    return 1
}

# start_hearth REACTORS -> sets SRV_PID, SRV_PORT
start_hearth() {
    SRV_PORT=$(free_port)
    "${SERVER_PIN[@]}" "$HEARTH_BIN" --port "$SRV_PORT" --bind 127.0.0.1 --root "$TMP/www" \
        --threads "$THREADS" --reactors "$1" --access-log off --close-log \
        >"$TMP/hearth.out" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_port "$SRV_PORT"
}

# start_nginx -> one worker; SRV_PID is the worker (the master does no request work)
start_nginx() {
    SRV_PORT=$(free_port)
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server { listen 127.0.0.1:$SRV_PORT; root $TMP/www; }
}
CONF
    "${SERVER_PIN[@]}" nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.out" 2>&1 &
    local master=$!
    PIDS+=("$master")
    wait_port "$SRV_PORT"
    SRV_PID=$(pgrep -P "$master" | head -n 1)
}

stop_server() {
    local p=${PIDS[-1]}
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset 'PIDS[-1]'
}

# cpu_snapshot PID FILE: "tid name ns" per thread
cpu_snapshot() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")"
    done >"$2" 2>/dev/null || true
}

# measure NAME WORKLOAD ROUND: one wrk run with per-thread CPU around it
measure() {
    local name=$1 wl=$2 round=$3 hdr=()
    [[ $wl == close ]] && hdr=(-H "Connection: close")
    cpu_snapshot "$SRV_PID" "$TMP/before"
    "${CLIENT_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" \
        "http://127.0.0.1:$SRV_PORT/index.html" >"$TMP/wrk.out" 2>&1 || true
    cpu_snapshot "$SRV_PID" "$TMP/after"
    local reqs
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    python3 - "$TMP/before" "$TMP/after" "${reqs:-0}" "$name" "$wl" "$round" >>"$TMP/rows" <<'PY'
import sys
def load(p):
    out = {}
    for line in open(p):
        tid, name, ns = line.split()
        out[tid] = (name, int(ns))
    return out
before, after = load(sys.argv[1]), load(sys.argv[2])
reqs = int(sys.argv[3])
name, wl, rnd = sys.argv[4], sys.argv[5], sys.argv[6]
if reqs == 0:
    sys.exit(0)
cls = {"reactor": 0.0, "worker": 0.0, "log": 0.0, "other": 0.0}
busiest = ("-", 0.0)
for tid, (comm, ns) in after.items():
    us = (ns - before.get(tid, (comm, 0))[1]) / 1000.0 / reqs
    if comm in ("hearth",) or comm.startswith("hearth-r"):
        c = "reactor"
    elif comm.startswith("hearth-w"):
        c = "worker"
    elif comm.startswith("hearth-log") or comm.startswith("hearth-l"):
        c = "log"
    elif comm == "nginx":
        c = "worker"
    else:
        c = "other"
    cls[c] += us
    if us > busiest[1]:
        busiest = (comm, us)
total = sum(cls.values())
print(f"{name}\t{wl}\t{rnd}\t{reqs}\t{cls['reactor']:.2f}\t{cls['worker']:.2f}\t{cls['log'] + cls['other']:.2f}\t{total:.2f}\t{busiest[0]}\t{busiest[1]:.2f}")
PY
}

: >"$TMP/rows"
IFS=, read -ra REACTOR_LIST <<<"$REACTORS"
for round in $(seq "$ROUNDS"); do
    for r in "${REACTOR_LIST[@]}"; do
        start_hearth "$r"
        for wl in keepalive close; do measure "hearth-r$r" "$wl" "$round"; done
        stop_server
    done
    start_nginx
    for wl in keepalive close; do measure "nginx1" "$wl" "$round"; done
    stop_server
done

python3 - "$TMP/rows" "$THREADS" "$DURATION" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
threads = int(sys.argv[2])
duration = float(sys.argv[3])
groups = {}
for name, wl, rnd, reqs, rea, wor, oth, tot, bname, bus in rows:
    groups.setdefault((name, wl), []).append((int(reqs), float(rea), float(wor), float(oth), float(tot), bname, float(bus)))
def med(xs): return statistics.median(xs)
def default_reactors(c): return max(1, -(-c // 2))
print(f"# CPU microseconds per request (median of rounds); hearth --threads {threads}")
print("server\tworkload\treq/s\treactor_us\tworker_us\tother_us\ttotal_us\tbusiest\tbusiest_us\tproj8\tproj16")
proj = {}
for (name, wl), v in sorted(groups.items()):
    reqs = med([x[0] for x in v]); rea = med([x[1] for x in v]); wor = med([x[2] for x in v])
    oth = med([x[3] for x in v]); tot = med([x[4] for x in v]); bus = med([x[6] for x in v])
    bname = v[0][5]
    p = {}
    for c in (8, 16):
        if name.startswith("nginx"):
            p[c] = c * 1e6 / tot
        else:
            r = default_reactors(c)
            p[c] = min(c * 1e6 / tot, r * 1e6 / rea if rea > 0 else float("inf"))
    proj[(name, wl)] = p
    print(f"{name}\t{wl}\t{reqs / duration:.0f}\t{rea:.2f}\t{wor:.2f}\t{oth:.2f}\t{tot:.2f}\t{bname}\t{bus:.2f}\t{p[8]:.0f}\t{p[16]:.0f}")
print("# projections vs nginx (same run): hearth / nginx1")
for (name, wl), p in sorted(proj.items()):
    if name.startswith("nginx"): continue
    n = proj.get(("nginx1", wl))
    if n:
        print(f"{name}\t{wl}\t8 cores: {p[8]/n[8]:.2f}x\t16 cores: {p[16]/n[16]:.2f}x")
PY
