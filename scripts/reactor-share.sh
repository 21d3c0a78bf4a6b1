#!/usr/bin/env bash
# scripts/reactor-share.sh (also `scripts/bench.sh --reactor-share`): where a
# request's CPU time goes, thread by thread, for hearth and nginx in the same run.
#
# For each server layout and workload it reads every thread's CPU time
# (/proc/PID/task/TID/schedstat, nanoseconds) and context switches
# (voluntary + involuntary, /proc/PID/task/TID/status) before and after a wrk run
# and divides by the requests wrk completed. Workloads: keep-alive (wrk -c100) and
# Connection: close (one connection per request, as webbench does). It prints,
# per layout: CPU per request by role (reactors, workers, other) and by thread,
# context switches per request, the busiest reactor and worker against their
# role's mean (the spread), and an 8-core projection:
#   hearth: X = min(8e6 / total_us, 4e6 / (reactor_us * reactor_spread),
#                   8e6 / (worker_us * worker_spread))
#           measured with hearth's defaults for 8 CPUs (--reactors 4 --threads 8)
#   nginx:  8 workers, 8e6 / worker_us
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
HEARTH_BIN=${HEARTH_BIN:-$REPO_DIR/target/release/hearth}
THREADS=$(nproc)
REACTORS=""
LAYOUTS=""
DURATION=5
CONNS=100
ROUNDS=2
CPUS_SERVER=""
CPUS_CLIENT=""

usage() {
    cat <<'USAGE'
Usage: scripts/reactor-share.sh [options]
  --layouts LIST     hearth layouts REACTORSxTHREADS, comma separated
                     (default: 1xNPROC,4x4,4x8; 4x8 is hearth's default for 8
                     CPUs, which the projection uses)
  --threads N        with --reactors: hearth --threads (default: nproc)
  --reactors LIST    instead of --layouts: these --reactors values, each with
                     --threads N
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
        --layouts) LAYOUTS=$2; shift 2 ;;
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

# start_hearth REACTORS THREADS -> sets SRV_PID, SRV_PORT
start_hearth() {
    SRV_PORT=$(free_port)
    "${SERVER_PIN[@]}" "$HEARTH_BIN" --port "$SRV_PORT" --bind 127.0.0.1 --root "$TMP/www" \
        --threads "$2" --reactors "$1" --access-log off --close-log \
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

# cpu_snapshot PID FILE: "tid name ns switches" per thread
cpu_snapshot() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")" \
            "$(awk '/ctxt_switches/ {n += $2} END {print n + 0}' "$t/status")"
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
import json, re, sys
def load(p):
    out = {}
    for line in open(p):
        tid, name, ns, cs = line.split()
        out[tid] = (name, int(ns), int(cs))
    return out
before, after = load(sys.argv[1]), load(sys.argv[2])
reqs = int(sys.argv[3])
if reqs == 0:
    sys.exit(0)
threads = []
for tid, (comm, ns, cs) in after.items():
    b = before.get(tid, (comm, 0, 0))
    if comm == "hearth" or re.match(r"hearth-r\d", comm):
        role = "reactor"
    elif re.match(r"hearth-w\d", comm) or comm == "nginx":
        role = "worker"
    else:
        role = "other"
    threads.append({"name": comm, "role": role, "us": (ns - b[1]) / 1000.0 / reqs,
                    "cs": (cs - b[2]) / reqs})
print(json.dumps({"name": sys.argv[4], "wl": sys.argv[5], "round": sys.argv[6],
                  "reqs": reqs, "threads": threads}))
PY
}

: >"$TMP/rows"
if [[ -z $LAYOUTS ]]; then
    if [[ -n $REACTORS ]]; then
        LAYOUTS=$(tr ',' '\n' <<<"$REACTORS" | sed "s/\$/x$THREADS/" | paste -sd,)
    else
        LAYOUTS="1x$(nproc),4x4,4x8"
    fi
fi
IFS=, read -ra LAYOUT_LIST <<<"$LAYOUTS"
for round in $(seq "$ROUNDS"); do
    for layout in "${LAYOUT_LIST[@]}"; do
        start_hearth "${layout%x*}" "${layout#*x}"
        for wl in keepalive close; do measure "hearth-$layout" "$wl" "$round"; done
        stop_server
    done
    start_nginx
    for wl in keepalive close; do measure "nginx1" "$wl" "$round"; done
    stop_server
done

python3 - "$TMP/rows" "$DURATION" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
duration = float(sys.argv[2])
med = statistics.median
def figures(r):
    by = defaultdict(list)
    for t in r["threads"]:
        by[t["role"]].append(t["us"])
    def spread(xs):
        xs = [x for x in xs if x > 0]
        return max(xs) / (sum(xs) / len(xs)) if xs else 1.0
    rea, wor, oth = (sum(by[k]) for k in ("reactor", "worker", "other"))
    total = rea + wor + oth
    f = {"reqs": r["reqs"], "reactor": rea, "worker": wor, "other": oth, "total": total,
         "cs": sum(t["cs"] for t in r["threads"]),
         "rspread": spread(by["reactor"]), "wspread": spread(by["worker"])}
    if r["name"].startswith("nginx"):
        f["proj8"] = 8e6 / wor
    else:
        f["proj8"] = min(8e6 / total,
                         4e6 / (rea * f["rspread"]) if rea > 0 else float("inf"),
                         8e6 / (wor * f["wspread"]) if wor > 0 else float("inf"))
    return f
groups = defaultdict(list)
per_thread = defaultdict(lambda: defaultdict(list))
for r in rows:
    groups[(r["name"], r["wl"])].append(figures(r))
    for t in r["threads"]:
        per_thread[(r["name"], r["wl"])][t["name"]].append(t["us"])
keys = ["reqs", "reactor", "worker", "other", "total", "cs", "rspread", "wspread", "proj8"]
summary = {k: {x: med([f[x] for f in v]) for x in keys} for k, v in groups.items()}
print(f"# medians of {max(len(v) for v in groups.values())} rounds; CPU in microseconds per request")
print("server\tworkload\treq/s\treactor_us\tworker_us\tother_us\ttotal_us\tcs/req\treactor_spread\tworker_spread\tproj8")
for (name, wl), f in sorted(summary.items()):
    print(f"{name}\t{wl}\t{f['reqs'] / duration:.0f}\t{f['reactor']:.2f}\t{f['worker']:.2f}\t{f['other']:.2f}"
          f"\t{f['total']:.2f}\t{f['cs']:.3f}\t{f['rspread']:.2f}\t{f['wspread']:.2f}\t{f['proj8']:.0f}")
print("# per thread (CPU us per request)")
for (name, wl), ts in sorted(per_thread.items()):
    cells = "  ".join(f"{t}={med(v):.2f}" for t, v in sorted(ts.items()) if med(v) >= 0.01)
    print(f"{name}\t{wl}\t{cells}")
print("# vs nginx 1 worker in the same run: CPU per request, and the 8-core projection")
for (name, wl), f in sorted(summary.items()):
    n = summary.get(("nginx1", wl))
    if name.startswith("nginx") or not n:
        continue
    note = "  <- hearth's layout for 8 CPUs" if name.endswith("-4x8") else ""
    print(f"{name}\t{wl}\tCPU/req {f['total'] / n['total']:.2f}x\treq/s {f['reqs'] / n['reqs']:.2f}x"
          f"\t8-core projection {f['proj8'] / n['proj8']:.2f}x{note}")
PY
