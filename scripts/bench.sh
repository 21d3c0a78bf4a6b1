#!/usr/bin/env bash
# scripts/bench.sh: hearth and nginx measured side by side on the same corpus.
#
# Run `scripts/bench.sh --help` for the options. Everything it starts (servers,
# load generators, the idle-connection holder) is bounded by `timeout` or
# stopped by PID on exit, and its temp dir is removed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<'EOF'
Usage: scripts/bench.sh [options]

Benchmarks hearth (target/release/hearth, built with `cargo build --release`)
against nginx with 1 worker (nginx1) and 2 workers (nginx2), all serving the
same generated corpus on loopback, in alternating rounds (A B C A B C ...).

Workloads (per round, per server):
  keep-alive   wrk -t1 -c100 -d5s --latency  /index.html (1 KiB)
               -> req/s, p99 latency, errors, server CPU time per request
  short conns  ab -r -c 500 -n 20000 (no -k)  /index.html
               -> successful req/s, failed requests (incl. non-2xx)
               plus `webbench -c 500 -t 5` when a webbench binary is on PATH
  big file     wrk -t1 -c4 -d5s  /10m.bin (10 MiB) -> MiB/s
  idle         10,000 keep-alive connections opened and held by
               scripts/bench-idle.py -> server RSS delta per connection
               (RSS while held minus RSS before the server's first idle run)
  peak RSS     VmHWM of the server processes at the end of the run

Options:
  --rounds N            rounds per workload (default 2)
  --stat median|best    statistic over rounds shown in the table and chart
                        (default median; the TSV always has both)
  --out FILE            summary TSV (default target/bench/bench-<timestamp>.tsv);
                        per-round values go to FILE with -raw.tsv suffix
  --only LIST           servers to run, comma separated: hearth,nginx1,nginx2
                        (`nginx` means nginx1,nginx2; default all three)
  --threads-sweep       instead of the full suite, run the keep-alive workload
                        with hearth --threads 1,2,4,... up to nproc and nginx
                        with the same number of workers; print the curve.
                        With --procs P, each row is P processes x M threads
                        (M = 1,2,4,... while P*M <= nproc) against nginx with
                        P*M workers
  --layout-sweep        instead of the full suite, for each total thread count
                        T = 1,2,4,... up to nproc run the keep-alive workload
                        on every hearth layout P processes x M threads with
                        P*M = T (1xT, 2x(T/2), ..., Tx1; --reuseport when P > 1)
                        and on nginx with T workers, in alternating rounds;
                        print req/s per layout and the ratio to nginx
  --reactors LIST       hearth --reactors values, comma separated (default:
                        hearth's own). The full suite uses the first; the
                        threads sweep runs one hearth row per value at each
                        thread count; the layout sweep adds, at each total T,
                        a one-process layout 1xT with each value (named 1xTrR)
  --reactor-share       instead of the full suite, run scripts/reactor-share.sh
                        (CPU per request by thread for keep-alive and
                        Connection: close, busiest thread, 8- and 16-core
                        projections beside nginx); the options after it are
                        passed to that script (see its --help)
  --https               instead of the full suite, run scripts/bench-https.sh:
                        hearth against nginx (1 worker) over HTTPS with the
                        same ECDSA P-256 certificate (keep-alive 1 KiB, a new
                        TLS connection per request, 10 MiB, memory per idle
                        TLS connection); the options after it are passed to
                        that script (see its --help)
  --layout-ab           with --layout-sweep, also run the short-connection ab
                        workload on every layout and on nginx (each adds one
                        ab run per server per round, a few seconds each)
  --wrk-threads N       wrk -t for the keep-alive workload (default 1)
  --connections N       wrk -c for the keep-alive workload (default 100)
  --duration S          seconds per wrk/webbench run (default 5)
  --big-connections N   wrk -c for the big-file workload (default 4)
  --ab-concurrency N    ab -c (default 500)
  --ab-requests N       ab -n (default 20000)
  --idle-conns N        connections held by the idle workload (default 10000)
  --no-idle             skip the idle workload
  --hearth-threads N    pass --threads N to hearth (default: hearth's own);
                        with --procs, to each process
  --procs P             run hearth as P processes sharing one port, each with
                        --reuseport (default 1: one process, no --reuseport);
                        CPU time, RSS and peak RSS are summed over all P
  --hearth-args "ARGS"  extra hearth arguments, word-split (e.g. "--max-conns 5000")
  --cpus-server LIST    pin servers with `taskset -c LIST`
  --cpus-client LIST    pin load generators with `taskset -c LIST`
  --no-build            do not run `cargo build --release`
  --hearth-bin PATH     hearth binary (default target/release/hearth; implies
                        --no-build unless the path is the default)
  --no-chart            do not draw the PNG chart even if gnuplot is present
  -h, --help            this text

Environment overrides (word-split into a command prefix, so a wrapper such as
`WRK="target/devkit/run wrk"` works): WRK, AB, NGINX, WEBBENCH, PYTHON, CARGO.

Servers' CPU time and memory are read from /proc/<pid>, so those metrics are
only meaningful when the servers run on this machine; they print as n/a
otherwise.
EOF
}

die() { echo "bench.sh: error: $*" >&2; exit 1; }
note() { echo "==> $*" >&2; }
warn() { echo "bench.sh: warning: $*" >&2; }

# ---------------------------------------------------------------- options
ROUNDS=2
PROCS=1
REACTORS=""
LAYOUT=0
LAYOUT_AB=0
STAT=median
OUT=""
ONLY="hearth,nginx1,nginx2"
SWEEP=0
WRK_THREADS=1
CONNECTIONS=100
DURATION=5
BIG_CONNECTIONS=4
AB_CONC=500
AB_REQS=20000
IDLE_CONNS=10000
DO_IDLE=1
HEARTH_THREADS=""
HEARTH_ARGS=""
CPUS_SERVER=""
CPUS_CLIENT=""
DO_BUILD=1
HEARTH_BIN_DEFAULT="$REPO_DIR/target/release/hearth"
HEARTH_BIN="${HEARTH:-$HEARTH_BIN_DEFAULT}"
DO_CHART=1

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --rounds) need_arg "$@"; ROUNDS=$2; shift 2 ;;
        --stat) need_arg "$@"; STAT=$2; shift 2 ;;
        --out) need_arg "$@"; OUT=$2; shift 2 ;;
        --only) need_arg "$@"; ONLY=$2; shift 2 ;;
        --threads-sweep) SWEEP=1; shift ;;
        --reactors) need_arg "$@"; REACTORS=$2; shift 2 ;;
        --reactor-share) shift; exec "$SCRIPT_DIR/reactor-share.sh" "$@" ;;
        --https) shift; exec "$SCRIPT_DIR/bench-https.sh" "$@" ;;
        --layout-sweep) LAYOUT=1; shift ;;
        --layout-ab) LAYOUT_AB=1; shift ;;
        --procs) need_arg "$@"; PROCS=$2; shift 2 ;;
        --wrk-threads) need_arg "$@"; WRK_THREADS=$2; shift 2 ;;
        --connections) need_arg "$@"; CONNECTIONS=$2; shift 2 ;;
        --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
        --big-connections) need_arg "$@"; BIG_CONNECTIONS=$2; shift 2 ;;
        --ab-concurrency) need_arg "$@"; AB_CONC=$2; shift 2 ;;
        --ab-requests) need_arg "$@"; AB_REQS=$2; shift 2 ;;
        --idle-conns) need_arg "$@"; IDLE_CONNS=$2; shift 2 ;;
        --no-idle) DO_IDLE=0; shift ;;
        --hearth-threads) need_arg "$@"; HEARTH_THREADS=$2; shift 2 ;;
        --hearth-args) need_arg "$@"; HEARTH_ARGS=$2; shift 2 ;;
        --cpus-server) need_arg "$@"; CPUS_SERVER=$2; shift 2 ;;
        --cpus-client) need_arg "$@"; CPUS_CLIENT=$2; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --hearth-bin) need_arg "$@"; HEARTH_BIN=$2; shift 2 ;;
        --no-chart) DO_CHART=0; shift ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

for v in ROUNDS PROCS WRK_THREADS CONNECTIONS DURATION BIG_CONNECTIONS AB_CONC AB_REQS IDLE_CONNS; do
    { is_uint "${!v}" && [[ ${!v} -gt 0 ]]; } || die "$v must be a positive integer (got '${!v}')"
done
[[ $STAT == median || $STAT == best ]] || die "--stat must be median or best"
[[ $SWEEP -eq 0 || $LAYOUT -eq 0 ]] || die "--threads-sweep and --layout-sweep are exclusive"
[[ $LAYOUT -eq 1 || $LAYOUT_AB -eq 0 ]] || die "--layout-ab needs --layout-sweep"
[[ $LAYOUT -eq 0 || $PROCS -eq 1 ]] || die "--procs does not apply to --layout-sweep (it runs every layout)"
[[ $SWEEP -eq 0 && $LAYOUT -eq 0 ]] || [[ -z $HEARTH_THREADS ]] || warn "--hearth-threads is ignored by the sweeps (they set hearth's threads)"
[[ -z $HEARTH_THREADS ]] || is_uint "$HEARTH_THREADS" || die "--hearth-threads must be an integer"
REACTOR_LIST=()
if [[ -n $REACTORS ]]; then
    IFS=, read -ra REACTOR_LIST <<<"$REACTORS"
    for r in "${REACTOR_LIST[@]}"; do is_uint "$r" && [[ $r -ge 1 ]] || die "--reactors: '$r' is not a count"; done
fi
[[ $AB_REQS -ge $AB_CONC ]] || die "--ab-requests must be >= --ab-concurrency"
[[ $HEARTH_BIN == "$HEARTH_BIN_DEFAULT" ]] || DO_BUILD=0
[[ $HEARTH_BIN == /* ]] || HEARTH_BIN="$PWD/$HEARTH_BIN"

# Servers selected.
declare -A WANT=()
IFS=',' read -ra _only <<<"$ONLY"
for s in "${_only[@]}"; do
    case $s in
        hearth|nginx1|nginx2) WANT[$s]=1 ;;
        nginx) WANT[nginx1]=1; WANT[nginx2]=1 ;;
        "") ;;
        *) die "--only: unknown server '$s' (hearth, nginx1, nginx2, nginx)" ;;
    esac
done
[[ ${#WANT[@]} -gt 0 ]] || die "--only selected no server"
[[ $LAYOUT -eq 0 || -n ${WANT[hearth]:-} ]] || die "--layout-sweep needs hearth in --only"
SERVERS=()
for s in hearth nginx1 nginx2; do [[ -z ${WANT[$s]:-} ]] || SERVERS+=("$s"); done
[[ $SWEEP -eq 0 && $LAYOUT -eq 0 ]] || { SERVERS=(); [[ -z ${WANT[hearth]:-} ]] || SERVERS+=(hearth); if [[ -n ${WANT[nginx1]:-}${WANT[nginx2]:-} ]]; then SERVERS+=(nginx); fi; }

# ---------------------------------------------------------------- tools
read -ra WRK_CMD <<<"${WRK:-wrk}"
read -ra AB_CMD <<<"${AB:-ab}"
read -ra NGINX_CMD <<<"${NGINX:-nginx}"
read -ra PY_CMD <<<"${PYTHON:-python3}"
read -ra CARGO_CMD <<<"${CARGO:-cargo}"
WEBBENCH_CMD=()
if [[ -n ${WEBBENCH:-} ]]; then read -ra WEBBENCH_CMD <<<"$WEBBENCH"
elif command -v webbench >/dev/null 2>&1; then WEBBENCH_CMD=(webbench); fi

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have "${WRK_CMD[0]}" || missing+=("wrk (apt-get install wrk)")
have "${AB_CMD[0]}" || missing+=("ab (apt-get install apache2-utils)")
need_nginx=0
for s in "${SERVERS[@]}"; do [[ $s != nginx* ]] || need_nginx=1; done
[[ $need_nginx -eq 0 ]] || have "${NGINX_CMD[0]}" || missing+=("nginx (apt-get install nginx-light)")
have "${PY_CMD[0]}" || missing+=("python3 (apt-get install python3)")
have timeout || missing+=("timeout (apt-get install coreutils)")
if [[ -n $CPUS_SERVER$CPUS_CLIENT ]]; then have taskset || missing+=("taskset (apt-get install util-linux)"); fi
if [[ -n ${WANT[hearth]:-} && $DO_BUILD -eq 1 ]]; then have "${CARGO_CMD[0]}" || missing+=("cargo (https://rustup.rs)"); fi
if [[ ${#missing[@]} -gt 0 ]]; then
    for m in "${missing[@]}"; do echo "bench.sh: missing tool: $m" >&2; done
    echo "bench.sh: install with: apt-get install -y wrk apache2-utils nginx-light" >&2
    exit 2
fi

SERVER_PIN=()
CLIENT_PIN=()
[[ -z $CPUS_SERVER ]] || SERVER_PIN=(taskset -c "$CPUS_SERVER")
[[ -z $CPUS_CLIENT ]] || CLIENT_PIN=(taskset -c "$CPUS_CLIENT")
NPROC=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$LOAD1" -v n="$NPROC" 'BEGIN {exit !(l > n / 2)}'; then
    warn "1-minute load average is $LOAD1 on $NPROC CPUs before starting; results will be noisy (consider more --rounds)"
fi

# ---------------------------------------------------------------- cleanup
TMP=""
declare -a STARTED_PIDS=()
IDLE_PID=""
cleanup() {
    local rc=$? p i
    trap - EXIT INT TERM
    exec 7>&- 8<&- || true
    if [[ -n $IDLE_PID ]]; then kill -KILL "$IDLE_PID" 2>/dev/null || true; fi
    for p in "${STARTED_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${STARTED_PIDS[@]}"; do
        for i in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [[ -z $TMP ]] || rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
if [[ -n ${WANT[hearth]:-} ]]; then
    if [[ $DO_BUILD -eq 1 ]]; then
        note "cargo build --release"
        (cd "$REPO_DIR" && "${CARGO_CMD[@]}" build --release >&2) \
            || die "cargo build --release failed (benchmark nginx alone with --only nginx)"
    fi
    [[ -x $HEARTH_BIN ]] || die "hearth binary not found at $HEARTH_BIN"
fi

# ---------------------------------------------------------------- limits
# 10k idle connections need more than the usual 1024 descriptors, on both the
# client (bench-idle.py) and the servers, which inherit these limits.
fd_need=$((IDLE_CONNS + 4096))
[[ $fd_need -ge 20000 ]] || fd_need=20000
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $fd_need ]]; then
    ulimit -Hn "$fd_need" 2>/dev/null || true   # works as root
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -Sn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
if [[ $DO_IDLE -eq 1 && $NOFILE -lt $((IDLE_CONNS + 64)) ]]; then
    warn "RLIMIT_NOFILE is $NOFILE; idle workload capped at $((NOFILE - 64)) connections"
    IDLE_CONNS=$((NOFILE - 64))
fi

# ---------------------------------------------------------------- corpus
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench.XXXXXX")
chmod 755 "$TMP"
CORPUS="$TMP/www"
mkdir -p "$CORPUS"
awk 'BEGIN {
    h = "<!DOCTYPE html>\n<html><head><title>bench</title></head><body>\n"
    t = "\n</body></html>\n"
    for (i = length(h) + length(t); i < 1024; i++) b = b ((i % 64 == 63) ? "\n" : "x")
    printf "%s%s%s", h, b, t }' >"$CORPUS/index.html"
head -c 102400 /dev/urandom >"$CORPUS/100k.bin"
head -c 10485760 /dev/urandom >"$CORPUS/10m.bin"
[[ $(stat -c %s "$CORPUS/index.html") -eq 1024 ]] || die "corpus: index.html is not 1 KiB"
chmod -R a+rX "$CORPUS"

# ---------------------------------------------------------------- helpers
# Free loopback ports (bound together so they are distinct, then released).
free_ports() {
    "${PY_CMD[@]}" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# check_server PORT: every corpus file answers 200 with the right length.
check_server() {
    "${PY_CMD[@]}" - "$1" "$CORPUS" <<'EOF'
import http.client, os, sys
port, root = int(sys.argv[1]), sys.argv[2]
for name in ("index.html", "100k.bin", "10m.bin"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/" + name)
    r = c.getresponse()
    body = r.read()
    want = os.path.getsize(os.path.join(root, name))
    if r.status != 200 or len(body) != want:
        sys.exit("GET /%s: status %d, %d bytes (want 200, %d)" % (name, r.status, len(body), want))
    c.close()
EOF
}

# wait_http PORT SECONDS: until a request to / succeeds at TCP level.
wait_port() {
    local port=$1 secs=$2 i
    for i in $(seq $((secs * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# SRV_PID is the main process (hearth's first process, nginx's master);
# SRV_PIDS lists every process started for the server (hearth: all --procs).
declare -A SRV_PORT=() SRV_PID=() SRV_PIDS=() SRV_KIND=() SRV_DIR=()

# spawn_hearth NAME DIR LOG ARGS...: one hearth process in DIR, waited for until
# it prints its listening line to LOG; sets SPAWNED_PID and SPAWNED_PORT (the
# port it reports).
spawn_hearth() {
    local name=$1 dir=$2 log=$3 i; shift 3
    (cd "$dir" && exec "${SERVER_PIN[@]}" "$HEARTH_BIN" "$@") >"$log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    for i in $(seq 300); do
        grep -q 'hearth listening on' "$log" 2>/dev/null && break
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2; die "$name exited during startup"
        fi
        sleep 0.1
    done
    grep -q 'hearth listening on' "$log" || { cat "$log" >&2; die "$name did not print its listening line in 30s"; }
    SPAWNED_PID=$pid
    SPAWNED_PORT=$(sed -n 's|.*hearth listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
}

start_hearth() { # name port threads [procs] [reactors]
    local name=$1 port=$2 threads=$3 procs=${4:-$PROCS} reactors=${5:-${REACTOR_LIST[0]:-}} dir="$TMP/$1" i
    mkdir -p "$dir"
    local args=(--bind 127.0.0.1 -r "$CORPUS" -c)
    [[ -z $threads ]] || args+=(-t "$threads")
    [[ -z $reactors ]] || args+=(--reactors "$reactors")
    [[ $procs -eq 1 ]] || args+=(--reuseport)
    local extra=()
    read -ra extra <<<"$HEARTH_ARGS"
    args+=("${extra[@]}")
    # First process on the asked port; the others join the port it reports
    # (same as asked, unless it chose another). Process 1 logs to out.log,
    # process i > 1 to out.i.log.
    local pids=()
    spawn_hearth "$name" "$dir" "$dir/out.log" -p "$port" "${args[@]}"
    pids+=("$SPAWNED_PID")
    [[ -z $SPAWNED_PORT ]] || port=$SPAWNED_PORT
    for ((i = 2; i <= procs; i++)); do
        spawn_hearth "$name (process $i of $procs)" "$dir" "$dir/out.$i.log" -p "$port" "${args[@]}"
        [[ -z $SPAWNED_PORT || $SPAWNED_PORT == "$port" ]] || die "$name process $i listens on port $SPAWNED_PORT, not $port"
        pids+=("$SPAWNED_PID")
    done
    # With SO_REUSEPORT a stray socket of someone else's on the same port
    # would silently take a share of the connections: expect exactly ours.
    if [[ $procs -gt 1 ]] && command -v ss >/dev/null 2>&1; then
        local n
        n=$(ss -Hltn "sport = :$port" 2>/dev/null | wc -l)
        [[ $n -eq $procs ]] || warn "$name: $n listening sockets on port $port, expected $procs"
    fi
    SRV_PORT[$name]=$port SRV_PID[$name]=${pids[0]} SRV_PIDS[$name]="${pids[*]}" SRV_KIND[$name]=hearth SRV_DIR[$name]=$dir
}

start_nginx() { # name port workers
    local name=$1 port=$2 workers=$3 dir="$TMP/$1" i
    mkdir -p "$dir"
    local wconns=20000
    [[ $wconns -ge $((IDLE_CONNS + 1000)) ]] || wconns=$((IDLE_CONNS + 1000))
    local user_line=""
    [[ $(id -u) -ne 0 ]] || user_line="user root;"
    cat >"$dir/nginx.conf" <<EOF
# written by scripts/bench.sh
$user_line
worker_processes $workers;
worker_rlimit_nofile $NOFILE;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $wconns;
}
http {
    types {
        text/html html;
        application/octet-stream bin;
    }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port backlog=4096;  # same listen(2) backlog as hearth's default
        root $CORPUS;
        location / { }
    }
}
EOF
    (cd "$dir" && exec "${SERVER_PIN[@]}" "${NGINX_CMD[@]}" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf") >"$dir/out.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    for i in $(seq 100); do
        [[ -s $dir/nginx.pid ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/out.log" "$dir/error.log" >&2 2>/dev/null || true; die "$name exited during startup"
        fi
        sleep 0.1
    done
    [[ -s $dir/nginx.pid ]] || die "$name wrote no pid file in 10s"
    local master
    master=$(<"$dir/nginx.pid")
    [[ $master == "$pid" ]] || STARTED_PIDS+=("$master")
    wait_port "$port" 10 || die "$name is not accepting on port $port"
    for i in $(seq 100); do
        [[ $(pgrep -c -P "$master" || true) -ge $workers ]] && break
        sleep 0.1
    done
    SRV_PORT[$name]=$port SRV_PID[$name]=$master SRV_PIDS[$name]=$master SRV_KIND[$name]=nginx SRV_DIR[$name]=$dir
}

stop_server() { # name
    local name=$1 pids pid i
    read -ra pids <<<"${SRV_PIDS[$1]}"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# Server PIDs whose resources we count: every process started for it (all
# hearth --procs processes) plus, for nginx, its workers (children of the master).
srv_pids() {
    local pids
    read -ra pids <<<"${SRV_PIDS[$1]}"
    printf '%s\n' "${pids[@]}"
    [[ ${SRV_KIND[$1]} != nginx ]] || pgrep -P "${SRV_PID[$1]}" || true
}

# Sum of utime+stime in clock ticks over the given PIDs (n/a if unreadable).
cpu_ticks() {
    local total=0 p line rest
    for p in "$@"; do
        line=$(cat "/proc/$p/stat" 2>/dev/null) || { echo n/a; return; }
        rest=${line##*) }
        read -ra f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# Sum of a /proc/PID/status field (kB) over the given PIDs.
status_kb() {
    local field=$1; shift
    local files=() p
    for p in "$@"; do [[ ! -r /proc/$p/status ]] || files+=("/proc/$p/status"); done
    if [[ ${#files[@]} -eq 0 ]]; then echo n/a; return; fi
    awk -v k="$field:" '$1==k {s+=$2; n++} END {if (n) print s; else print "n/a"}' "${files[@]}" 2>/dev/null || true
}

# Convert wrk's latency ("812.00us", "1.23ms", "2.00s", "1.00m") to ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u == "h") n *= 3600000; else if (u != "ms") { print "n/a"; exit }
        printf "%.4f\n", n }'
}
# Convert wrk's binary-unit rate ("1.23GB") to MiB.
to_mib() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "B") n /= 1048576; else if (u == "KB") n /= 1024; else if (u == "GB") n *= 1024
        else if (u == "TB") n *= 1048576; else if (u != "MB") { print "n/a"; exit }
        printf "%.2f\n", n }'
}

# run_load LOG LIMIT CMD...: a load generator, pinned and under timeout.
run_load() {
    local log=$1 limit=$2; shift 2
    local rc=0
    timeout -k 5 "$limit" "${CLIENT_PIN[@]}" "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        warn "'$*' exited with status $rc (log: $(tail -n 3 "$log" | tr '\n' ' '))"
    fi
    return 0
}

# Results: RES[metric/server] = space separated per-round values.
declare -A RES=()
RAW_ROWS=()
record() { # round server metric value
    RES[$3/$2]="${RES[$3/$2]:-}${RES[$3/$2]:+ }$4"
    RAW_ROWS+=("$1	$2	$3	$4")
}

settle() { sleep 1; }

# Warn (once per server) when a server has exited or is a zombie.
declare -A DEAD=()
# A hearth run as several processes counts as dead when any one of them is
# (the survivors would still answer, but not as the layout asked for).
check_alive() {
    local s=$1 line state pids i log
    [[ -z ${DEAD[$s]:-} ]] || return 0
    read -ra pids <<<"${SRV_PIDS[$s]}"
    for i in "${!pids[@]}"; do
        state=""
        line=$(cat "/proc/${pids[$i]}/stat" 2>/dev/null) || true
        [[ -z $line ]] || { state=${line##*) }; state=${state%% *}; }
        if [[ -z $state || $state == Z || $state == X ]]; then
            DEAD[$s]=1
            log="${SRV_DIR[$s]}/out.log"
            [[ $i -eq 0 ]] || log="${SRV_DIR[$s]}/out.$((i + 1)).log"
            warn "$s (pid ${pids[$i]}) is no longer running; last output: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ')"
            return 0
        fi
    done
}

# ---------------------------------------------------------------- workloads
wl_keepalive() { # round server
    local round=$1 s=$2 port=${SRV_PORT[$2]} log="$TMP/ka-$2-$1.log"
    local pids c0 c1
    mapfile -t pids < <(srv_pids "$s")
    c0=$(cpu_ticks "${pids[@]}")
    run_load "$log" $((DURATION + 30)) "${WRK_CMD[@]}" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        "http://127.0.0.1:$port/index.html"
    mapfile -t pids < <(srv_pids "$s")
    c1=$(cpu_ticks "${pids[@]}")
    local rps p99 reqs errs non2xx cpu
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$log")
    p99=$(awk '$1 == "99%" {print $2}' "$log")
    reqs=$(awk '/ requests in / {print $1}' "$log")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$log")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$log")
    record "$round" "$s" ka_rps "${rps:-n/a}"
    record "$round" "$s" ka_p99 "$([[ -n $p99 ]] && to_ms "$p99" || echo n/a)"
    if [[ -n $rps ]]; then record "$round" "$s" ka_err $(( ${errs:-0} + ${non2xx:-0} )); else record "$round" "$s" ka_err n/a; fi
    if [[ $c0 != n/a && $c1 != n/a && -n $reqs && $reqs -gt 0 ]]; then
        cpu=$(awk -v d=$((c1 - c0)) -v t="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.3f", d / t * 1e6 / r}')
    else
        cpu=n/a
    fi
    record "$round" "$s" ka_cpu "$cpu"
    note "  keep-alive  $s: ${rps:-n/a} req/s, p99 ${p99:-n/a}, errors ${errs:-0}+${non2xx:-0}, cpu/req ${cpu} us"
}

wl_ab() {
    local round=$1 s=$2 port=${SRV_PORT[$2]} log="$TMP/ab-$2-$1.log"
    run_load "$log" 300 "${AB_CMD[@]}" -r -q -c "$AB_CONC" -n "$AB_REQS" "http://127.0.0.1:$port/index.html"
    local rps secs failed non2xx complete fails
    rps=$(awk '/^Requests per second:/ {print $4}' "$log")
    secs=$(awk '/^Time taken for tests:/ {print $5}' "$log")
    failed=$(awk '/^Failed requests:/ {print $3}' "$log")
    non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$log")
    complete=$(awk '/^Complete requests:/ {print $3}' "$log")
    if [[ -n $rps && -n $secs ]]; then
        # Requests ab never completed (it gave up) count as failed too, and
        # throughput counts only the requests that did not fail, so a server
        # that refuses connections quickly does not look fast.
        fails=$(( ${failed:-0} + ${non2xx:-0} + AB_REQS - ${complete:-0} ))
        rps=$(awk -v n=$((AB_REQS - fails)) -v t="$secs" 'BEGIN {if (n < 0) n = 0; printf "%.2f", (t > 0 ? n / t : 0)}')
    else
        fails=n/a rps=n/a
    fi
    record "$round" "$s" ab_rps "$rps"
    record "$round" "$s" ab_fail "$fails"
    note "  ab          $s: $rps successful req/s, failed $fails"
}

wl_webbench() {
    local round=$1 s=$2 port=${SRV_PORT[$2]} log="$TMP/wb-$2-$1.log"
    run_load "$log" $((DURATION + 60)) "${WEBBENCH_CMD[@]}" -c "$AB_CONC" -t "$DURATION" "http://127.0.0.1:$port/index.html"
    local ok bad rps
    ok=$(awk '/^Requests:/ {print $2}' "$log")
    bad=$(awk '/^Requests:/ {print $4}' "$log")
    if [[ -n $ok ]]; then
        rps=$(awk -v n="$ok" -v t="$DURATION" 'BEGIN {printf "%.2f", n / t}')
    else
        rps=n/a; bad=n/a
    fi
    record "$round" "$s" wb_rps "$rps"
    record "$round" "$s" wb_fail "$bad"
    note "  webbench    $s: $rps req/s, failed $bad"
}

wl_big() {
    local round=$1 s=$2 port=${SRV_PORT[$2]} log="$TMP/big-$2-$1.log"
    run_load "$log" $((DURATION + 30)) "${WRK_CMD[@]}" -t1 -c"$BIG_CONNECTIONS" -d"${DURATION}s" \
        "http://127.0.0.1:$port/10m.bin"
    local tr mib errs non2xx
    tr=$(awk '/^Transfer\/sec:/ {print $2}' "$log")
    mib=$([[ -n $tr ]] && to_mib "$tr" || echo n/a)
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$log")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$log")
    record "$round" "$s" big_mibs "$mib"
    if [[ -n $tr ]]; then record "$round" "$s" big_err $(( ${errs:-0} + ${non2xx:-0} )); else record "$round" "$s" big_err n/a; fi
    note "  big file    $s: $mib MiB/s, errors ${errs:-0}+${non2xx:-0}"
}

declare -A IDLE_BASE=()
wl_idle() {
    local round=$1 s=$2 port=${SRV_PORT[$2]} log="$TMP/idle-$2-$1.log"
    local pids before after line open failed alive bpc
    rm -f "$TMP/idle.in" "$TMP/idle.out"
    mkfifo "$TMP/idle.in" "$TMP/idle.out"
    mapfile -t pids < <(srv_pids "$s")
    before=$(status_kb VmRSS "${pids[@]}")
    # Allocators keep freed memory, so after one idle run the next run's own
    # "before" already includes the connection memory and its delta reads ~0.
    # Every round is therefore measured against the RSS taken just before
    # this server's first idle run.
    [[ -n ${IDLE_BASE[$s]:-} ]] || IDLE_BASE[$s]=$before
    before=${IDLE_BASE[$s]}
    timeout -k 5 300 "${CLIENT_PIN[@]}" "${PY_CMD[@]}" "$SCRIPT_DIR/bench-idle.py" \
        --port "$port" -n "$IDLE_CONNS" --hold 240 <"$TMP/idle.in" >"$TMP/idle.out" 2>"$log" &
    IDLE_PID=$!
    exec 7>"$TMP/idle.in" 8<"$TMP/idle.out"
    open=n/a failed=n/a alive=n/a after=n/a
    if read -r -t 120 line <&8 && [[ $line == ready\ * ]]; then
        read -r _ open failed <<<"$line"
        sleep 1   # let the server finish registering the last batch
        mapfile -t pids < <(srv_pids "$s")
        after=$(status_kb VmRSS "${pids[@]}")
        (trap '' PIPE; echo check >&7) 2>/dev/null || true
        if read -r -t 60 line <&8 && [[ $line == alive\ * ]]; then alive=${line#alive }; fi
    else
        warn "idle holder for $s did not report ready ($(tail -n 3 "$log" | tr '\n' ' '))"
    fi
    exec 7>&- 8<&-
    wait "$IDLE_PID" 2>/dev/null || true
    IDLE_PID=""
    rm -f "$TMP/idle.in" "$TMP/idle.out"
    if [[ $before != n/a && $after != n/a && $alive != n/a && $alive -gt 0 ]]; then
        bpc=$(awk -v b="$before" -v a="$after" -v n="$alive" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}')
    else
        bpc=n/a
    fi
    [[ $alive == n/a || $alive == "$IDLE_CONNS" ]] || warn "$s: only $alive of $IDLE_CONNS idle connections still open (opened $open, failed $failed)"
    record "$round" "$s" idle_bpc "$bpc"
    record "$round" "$s" idle_held "$alive"
    note "  idle        $s: ${alive}/${IDLE_CONNS} held, RSS ${before} -> ${after} kB, ${bpc} B/conn"
    sleep 2   # let the server tear down the closed connections
}

# ---------------------------------------------------------------- stats
median() {
    printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != "" {print}' | sort -g |
        awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
best() { # higher|lower values...
    local dir=$1; shift
    printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != "" {print}' | sort -g |
        if [[ $dir == higher ]]; then tail -n 1; else head -n 1; fi | awk 'END {if (NR == 0) print "n/a"}1'
}
fmt() { # printf-format value
    if [[ $2 == n/a || -z $2 ]]; then echo n/a; else awk -v f="$1" -v v="$2" 'BEGIN {printf f "\n", v}'; fi
}
ratio() { # a b -> a/b
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "n/a" || b == "n/a" || a == "" || b == "") print "n/a"
        else if (b + 0 == 0) print (a + 0 == 0 ? "1.00" : "inf")
        else printf "%.2f\n", a / b }'
}
verdict() { # better ratio
    awk -v d="$1" -v r="$2" 'BEGIN {
        if (r == "n/a") { print "-"; exit }
        if (r == "inf") { print (d == "higher" ? "hearth" : "nginx1"); exit }
        r += 0
        if (r > 1.03) print (d == "higher" ? "hearth" : "nginx1")
        else if (r < 0.97) print (d == "higher" ? "nginx1" : "hearth")
        else print "~" }'
}

TS=$(date -u +%Y%m%d-%H%M%S)
if [[ -z $OUT ]]; then
    mkdir -p "$REPO_DIR/target/bench"
    if [[ $SWEEP -eq 1 ]]; then OUT="$REPO_DIR/target/bench/bench-sweep-$TS.tsv"
    elif [[ $LAYOUT -eq 1 ]]; then OUT="$REPO_DIR/target/bench/bench-layout-$TS.tsv"
    else OUT="$REPO_DIR/target/bench/bench-$TS.tsv"; fi
else
    mkdir -p "$(dirname "$OUT")"
fi

# Per-round values next to the summary TSV: $OUT with a -raw.tsv suffix.
write_raw_tsv() {
    RAW_OUT="${OUT%.tsv}-raw.tsv"
    {
        meta_lines
        printf 'round\tserver\tmetric\tvalue\n'
        printf '%s\n' "${RAW_ROWS[@]}"
    } >"$RAW_OUT"
}

meta_lines() {
    echo "# hearth bench $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) nproc=$NPROC"
    echo "# hearth=$( [[ -n ${WANT[hearth]:-} ]] && (cd "$REPO_DIR" && git describe --always --dirty 2>/dev/null || echo unknown) || echo skipped) nginx=$("${NGINX_CMD[@]}" -v 2>&1 | awk -F/ '{print $2}' | head -n 1) wrk=$("${WRK_CMD[@]}" --version 2>&1 | awk '{print $2}' | head -n 1)"
    echo "# rounds=$ROUNDS duration=${DURATION}s wrk_threads=$WRK_THREADS connections=$CONNECTIONS big_connections=$BIG_CONNECTIONS ab=-c$AB_CONC/-n$AB_REQS idle_conns=$IDLE_CONNS hearth_threads=${HEARTH_THREADS:-default} hearth_procs=$PROCS hearth_args='${HEARTH_ARGS}' cpus_server=${CPUS_SERVER:-any} cpus_client=${CPUS_CLIENT:-any}"
}

stat_of() { # metric server -> median or best (higher) over rounds
    local vals
    read -ra vals <<<"${RES[$1/$2]:-n/a}"
    if [[ $STAT == best ]]; then best higher "${vals[@]}"; else median "${vals[@]}"; fi
}

# ================================================================ sweep
if [[ $SWEEP -eq 1 ]]; then
    # Per-process thread counts M (hearth -t M in each of the --procs P
    # processes); the row's total is P*M and nginx runs P*M workers.
    THREADS_LIST=()
    t=1
    while [[ $((PROCS * t)) -le $NPROC ]]; do THREADS_LIST+=("$t"); t=$((t * 2)); done
    if [[ ${#THREADS_LIST[@]} -eq 0 ]]; then
        warn "--procs $PROCS is more than nproc=$NPROC: one row, oversubscribed"
        THREADS_LIST=(1)
    elif [[ $((PROCS * THREADS_LIST[-1])) -ne $NPROC && $((NPROC % PROCS)) -eq 0 ]]; then
        THREADS_LIST+=($((NPROC / PROCS)))
    fi
    note "threads sweep: hearth $PROCS process(es) x threads ${THREADS_LIST[*]} (keep-alive, wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds)"
    SWEEP_ROWS=()
    SWEEP_REACTORS=("${REACTOR_LIST[@]}")
    [[ ${#SWEEP_REACTORS[@]} -gt 0 ]] || SWEEP_REACTORS=("")
    for t in "${THREADS_LIST[@]}"; do
        total=$((PROCS * t))
        names=()
        [[ -z ${WANT[hearth]:-} ]] || for rr in "${SWEEP_REACTORS[@]}"; do names+=("hearth${rr:+-r$rr}"); done
        [[ -z ${WANT[nginx1]:-}${WANT[nginx2]:-} ]] || names+=(nginx)
        read -ra ports <<<"$(free_ports "${#names[@]}")"
        for i in "${!names[@]}"; do
            s=${names[$i]}
            if [[ $s == hearth* ]]; then
                rr=${s#hearth}; rr=${rr#-r}
                start_hearth "$s" "${ports[$i]}" "$t" "$PROCS" "$rr"
            else
                start_nginx nginx "${ports[$i]}" "$total"
            fi
            check_server "${SRV_PORT[$s]}" || die "$s failed the corpus check"
        done
        for r in $(seq "$ROUNDS"); do
            for s in "${names[@]}"; do
                settle
                check_alive "$s"
                [[ -z ${DEAD[$s]:-} ]] || continue
                wl_keepalive "$r" "$s"
            done
        done
        n=n/a
        [[ -z ${WANT[nginx1]:-}${WANT[nginx2]:-} ]] || { n=$(stat_of ka_rps nginx); stop_server nginx; }
        for s in "${names[@]}"; do
            [[ $s == hearth* ]] || continue
            h=$(stat_of ka_rps "$s")
            stop_server "$s"
            rr=${s#hearth}; rr=${rr#-r}
            SWEEP_ROWS+=("$total	$(fmt %.0f "$h")	$(fmt %.0f "$n")	$(ratio "$h" "$n")	${PROCS}x$t	${rr:-default}")
        done
        for s in "${names[@]}"; do unset "RES[ka_rps/$s]" "DEAD[$s]"; done
    done
    {
        meta_lines
        printf 'threads\thearth_rps\tnginx_rps\tratio_hearth_nginx\thearth_layout\thearth_reactors\n'
        printf '%s\n' "${SWEEP_ROWS[@]}"
    } >"$OUT"
    echo
    echo "keep-alive 1 KiB, wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, $STAT of $ROUNDS rounds (req/s, higher is better)"
    echo "threads = hearth processes x threads each (layout) = nginx workers; reactors = hearth --reactors"
    printf '%-8s %-7s %-9s %14s %14s %8s\n' threads layout reactors hearth nginx ratio
    for row in "${SWEEP_ROWS[@]}"; do
        IFS=$'\t' read -r a b c d e f <<<"$row"
        printf '%-8s %-7s %-9s %14s %14s %8s\n' "$a" "$e" "$f" "$b" "$c" "$d"
    done
    echo
    echo "TSV: $OUT"
    exit 0
fi

# ================================================================ layout sweep
if [[ $LAYOUT -eq 1 ]]; then
    TOTALS=()
    t=1
    while [[ $t -le $NPROC ]]; do TOTALS+=("$t"); t=$((t * 2)); done
    [[ ${TOTALS[-1]} -eq $NPROC ]] || note "nproc=$NPROC is not a power of two: totals stop at ${TOTALS[-1]}"
    with_nginx=0
    [[ -z ${WANT[nginx1]:-}${WANT[nginx2]:-} ]] || with_nginx=1
    nruns=0
    for t in "${TOTALS[@]}"; do
        for ((p = 1; p <= t; p *= 2)); do nruns=$((nruns + 1)); done
        nruns=$((nruns + ${#REACTOR_LIST[@]}))
        nruns=$((nruns + with_nginx))
    done
    note "layout sweep: totals ${TOTALS[*]}; $nruns servers x $ROUNDS rounds of keep-alive (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s)$([[ $LAYOUT_AB -eq 0 ]] || echo " + ab -c$AB_CONC -n$AB_REQS"); about $((nruns * ROUNDS * (DURATION + 1)))s of keep-alive load$([[ $LAYOUT_AB -eq 0 ]] || echo " plus the ab runs")"
    LAYOUT_ROWS=()
    for t in "${TOTALS[@]}"; do
        names=()
        for ((p = 1; p <= t; p *= 2)); do names+=("hearth-${p}x$((t / p))"); done
        for rr in "${REACTOR_LIST[@]}"; do names+=("hearth-1x${t}r$rr"); done
        ng="nginx-${t}w"
        [[ $with_nginx -eq 0 ]] || names+=("$ng")
        read -ra ports <<<"$(free_ports "${#names[@]}")"
        for i in "${!names[@]}"; do
            s=${names[$i]}
            if [[ $s == hearth-* ]]; then
                lay=${s#hearth-} rr=""
                [[ $lay != *r* ]] || { rr=${lay#*r}; lay=${lay%r*}; }
                start_hearth "$s" "${ports[$i]}" "${lay#*x}" "${lay%x*}" "$rr"
            else
                start_nginx "$s" "${ports[$i]}" "$t"
            fi
            check_server "${SRV_PORT[$s]}" || die "$s failed the corpus check"
            note "$s listening on 127.0.0.1:${SRV_PORT[$s]} (pids: $(srv_pids "$s" | tr '\n' ' '))"
        done
        for r in $(seq "$ROUNDS"); do
            note "total $t, round $r/$ROUNDS"
            for s in "${names[@]}"; do
                settle
                check_alive "$s"
                [[ -z ${DEAD[$s]:-} ]] || continue
                wl_keepalive "$r" "$s"
                [[ $LAYOUT_AB -eq 0 ]] || { settle; wl_ab "$r" "$s"; }
            done
        done
        for s in "${names[@]}"; do check_alive "$s"; stop_server "$s"; done
        n=n/a nab=n/a ncpu=n/a
        if [[ $with_nginx -eq 1 ]]; then
            n=$(stat_of ka_rps "$ng")
            read -ra v <<<"${RES[ka_cpu/$ng]:-n/a}"
            ncpu=$(median "${v[@]}")
            [[ $LAYOUT_AB -eq 0 ]] || nab=$(stat_of ab_rps "$ng")
        fi
        for s in "${names[@]}"; do
            [[ $s == hearth-* ]] || continue
            lay=${s#hearth-}
            lay=${lay%r*}
            h=$(stat_of ka_rps "$s") hab=n/a
            read -ra v <<<"${RES[ka_cpu/$s]:-n/a}"
            hcpu=$(median "${v[@]}")
            [[ $LAYOUT_AB -eq 0 ]] || hab=$(stat_of ab_rps "$s")
            LAYOUT_ROWS+=("$t	${s#hearth-}	${lay%x*}	${lay#*x}	$(fmt %.0f "$h")	$(fmt %.0f "$n")	$(ratio "$h" "$n")	$(fmt %.0f "$hab")	$(fmt %.0f "$nab")	$(ratio "$hab" "$nab")	$(fmt %.2f "$hcpu")	$(fmt %.2f "$ncpu")")
        done
    done
    {
        meta_lines
        printf 'threads\tlayout\tprocs\tthreads_per_proc\thearth_rps\tnginx_rps\tratio_hearth_nginx\thearth_ab_rps\tnginx_ab_rps\tratio_ab\thearth_cpu_us_per_req\tnginx_cpu_us_per_req\n'
        printf '%s\n' "${LAYOUT_ROWS[@]}"
    } >"$OUT"
    write_raw_tsv
    echo
    echo "keep-alive 1 KiB, wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s$([[ $LAYOUT_AB -eq 0 ]] || echo "; short conns ab -c$AB_CONC -n$AB_REQS"), $STAT of $ROUNDS rounds (req/s, higher is better)"
    echo "layout = hearth processes x threads each (--reuseport when processes > 1), rR = --reactors R; nginx runs <threads> workers"
    if [[ $LAYOUT_AB -eq 1 ]]; then
        printf '%-8s %-7s %12s %12s %7s %12s %12s %7s\n' threads layout hearth nginx ratio hearth-ab nginx-ab ratio
    else
        printf '%-8s %-7s %12s %12s %7s\n' threads layout hearth nginx ratio
    fi
    for row in "${LAYOUT_ROWS[@]}"; do
        IFS=$'\t' read -r a b _ _ c d e f g h _ _ <<<"$row"
        if [[ $LAYOUT_AB -eq 1 ]]; then
            printf '%-8s %-7s %12s %12s %7s %12s %12s %7s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h"
        else
            printf '%-8s %-7s %12s %12s %7s\n' "$a" "$b" "$c" "$d" "$e"
        fi
    done
    echo
    echo "TSV: $OUT"
    echo "per-round values: $RAW_OUT"
    exit 0
fi

# ================================================================ full suite
read -ra ports <<<"$(free_ports 3)"
i=0
for s in "${SERVERS[@]}"; do
    case $s in
        hearth) start_hearth hearth "${ports[$i]}" "$HEARTH_THREADS" ;;
        nginx1) start_nginx nginx1 "${ports[$i]}" 1 ;;
        nginx2) start_nginx nginx2 "${ports[$i]}" 2 ;;
    esac
    check_server "${SRV_PORT[$s]}" || die "$s failed the corpus check"
    note "$s listening on 127.0.0.1:${SRV_PORT[$s]} (pids: $(srv_pids "$s" | tr '\n' ' '))"
    i=$((i + 1))
done

WORKLOADS=(keepalive ab)
[[ ${#WEBBENCH_CMD[@]} -eq 0 ]] || WORKLOADS+=(webbench)
WORKLOADS+=(big)
[[ $DO_IDLE -eq 0 ]] || WORKLOADS+=(idle)
[[ ${#WEBBENCH_CMD[@]} -gt 0 ]] || note "webbench not on PATH: short-connection workload uses ab only"

for r in $(seq "$ROUNDS"); do
    note "round $r/$ROUNDS"
    for w in "${WORKLOADS[@]}"; do
        for s in "${SERVERS[@]}"; do
            settle
            check_alive "$s"
            [[ -z ${DEAD[$s]:-} ]] || continue
            case $w in
                keepalive) wl_keepalive "$r" "$s" ;;
                ab) wl_ab "$r" "$s" ;;
                webbench) wl_webbench "$r" "$s" ;;
                big) wl_big "$r" "$s" ;;
                idle) wl_idle "$r" "$s" ;;
            esac
        done
    done
done

for s in "${SERVERS[@]}"; do
    check_alive "$s"
    mapfile -t pids < <(srv_pids "$s")
    hwm=$(status_kb VmHWM "${pids[@]}")
    record end "$s" peak_rss "$(if [[ $hwm == n/a ]]; then echo n/a; else awk -v k="$hwm" 'BEGIN {printf "%.2f", k / 1024}'; fi)"
    if [[ ${SRV_KIND[$s]} == nginx && -s ${SRV_DIR[$s]}/error.log ]]; then
        n=$(grep -c -E '\[(alert|crit|emerg|error)\]' "${SRV_DIR[$s]}/error.log" || true)
        [[ $n -eq 0 ]] || warn "$s error.log has $n error lines, e.g.: $(grep -m1 -E '\[(alert|crit|emerg|error)\]' "${SRV_DIR[$s]}/error.log")"
    fi
done

# metric  label  unit  better  printf-format
METRIC_DEFS=(
    "ka_rps|keep-alive 1KiB throughput|req/s|higher|%.0f"
    "ka_p99|keep-alive 1KiB p99 latency|ms|lower|%.3f"
    "ka_err|keep-alive errors (socket+non-2xx)|count|lower|%.0f"
    "ka_cpu|server CPU per request (keep-alive)|us|lower|%.2f"
    "ab_rps|short conns ab -c$AB_CONC successful|req/s|higher|%.0f"
    "ab_fail|short conns ab failed (incl. non-2xx)|count|lower|%.0f"
)
[[ ${#WEBBENCH_CMD[@]} -eq 0 ]] || METRIC_DEFS+=(
    "wb_rps|short conns webbench -c$AB_CONC throughput|req/s|higher|%.0f"
    "wb_fail|short conns webbench failed|count|lower|%.0f"
)
METRIC_DEFS+=(
    "big_mibs|10 MiB file transfer (wrk -c$BIG_CONNECTIONS)|MiB/s|higher|%.1f"
    "big_err|10 MiB file errors|count|lower|%.0f"
)
[[ $DO_IDLE -eq 0 ]] || METRIC_DEFS+=(
    "idle_bpc|idle keep-alive conn RSS cost|B/conn|lower|%.0f"
    "idle_held|idle conns held (of $IDLE_CONNS)|count|higher|%.0f"
)
METRIC_DEFS+=("peak_rss|peak RSS (VmHWM, whole run)|MiB|lower|%.1f")

col() { if [[ -n ${WANT[$1]:-} ]]; then echo 1; fi; }
TABLE_ROWS=()
TSV_ROWS=()
for def in "${METRIC_DEFS[@]}"; do
    IFS='|' read -r key label unit better f <<<"$def"
    declare -A MED=() BEST=()
    for s in hearth nginx1 nginx2; do
        if [[ -n ${WANT[$s]:-} ]]; then
            read -ra vals <<<"${RES[$key/$s]:-n/a}"
            MED[$s]=$(median "${vals[@]}")
            BEST[$s]=$(best "$better" "${vals[@]}")
        else
            MED[$s]=n/a BEST[$s]=n/a
        fi
    done
    rt=$(ratio "${MED[hearth]}" "${MED[nginx1]}")
    rtb=$(ratio "${BEST[hearth]}" "${BEST[nginx1]}")
    if [[ $STAT == best ]]; then
        TABLE_ROWS+=("$label ($unit)|$(fmt "$f" "${BEST[hearth]}")|$(fmt "$f" "${BEST[nginx1]}")|$(fmt "$f" "${BEST[nginx2]}")|$rtb|$better|$(verdict "$better" "$rtb")")
    else
        TABLE_ROWS+=("$label ($unit)|$(fmt "$f" "${MED[hearth]}")|$(fmt "$f" "${MED[nginx1]}")|$(fmt "$f" "${MED[nginx2]}")|$rt|$better|$(verdict "$better" "$rt")")
    fi
    TSV_ROWS+=("$key	$label	$unit	$better	${MED[hearth]}	${MED[nginx1]}	${MED[nginx2]}	$rt	${BEST[hearth]}	${BEST[nginx1]}	${BEST[nginx2]}	$rtb")
    unset MED BEST
done

{
    meta_lines
    printf 'metric\tlabel\tunit\tbetter\thearth\tnginx1\tnginx2\tratio_hearth_nginx1\thearth_best\tnginx1_best\tnginx2_best\tratio_best\n'
    printf '%s\n' "${TSV_ROWS[@]}"
} >"$OUT"
write_raw_tsv

echo
echo "hearth vs nginx: $STAT of $ROUNDS rounds; nginx1 = 1 worker, nginx2 = 2 workers; ratio = hearth/nginx1"
[[ $PROCS -eq 1 || -z ${WANT[hearth]:-} ]] || echo "hearth = $PROCS processes with --reuseport, threads ${HEARTH_THREADS:-default} each; its CPU and memory are summed over all $PROCS"
printf '%-46s %12s %12s %12s %8s  %-7s %s\n' metric hearth nginx1 nginx2 ratio better winner
printf '%-46s %12s %12s %12s %8s  %-7s %s\n' "$(printf '%.0s-' {1..46})" ------------ ------------ ------------ -------- ------- ------
for row in "${TABLE_ROWS[@]}"; do
    IFS='|' read -r a b c d e f g <<<"$row"
    printf '%-46s %12s %12s %12s %8s  %-7s %s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g"
done
echo
echo "TSV: $OUT"
echo "per-round values: $RAW_OUT"

# Optional chart: each metric normalised to nginx1 = 1.
if [[ $DO_CHART -eq 1 ]] && command -v gnuplot >/dev/null 2>&1; then
    PNG="${OUT%.tsv}.png"
    DAT="$TMP/chart.dat"
    : >"$DAT"
    for row in "${TSV_ROWS[@]}"; do
        IFS=$'\t' read -r key label unit better h n1 n2 _ bh bn1 bn2 _ <<<"$row"
        [[ $STAT != best ]] || { h=$bh n1=$bn1 n2=$bn2; }
        [[ $key != *err && $key != *fail && $key != idle_held ]] || continue
        awk -v l="$key ($better)" -v h="$h" -v a="$n1" -v b="$n2" 'BEGIN {
            if (a == "n/a" || a + 0 == 0) exit
            printf "\"%s\"\t%s\t1\t%s\n", l, (h == "n/a" ? "NaN" : h / a), (b == "n/a" ? "NaN" : b / a) }' >>"$DAT"
    done
    if [[ -s $DAT ]]; then
        if gnuplot <<EOF 2>/dev/null; then echo "chart: $PNG"; else warn "gnuplot failed; no chart"; fi
set terminal pngcairo size 1100,500 noenhanced
set output "$PNG"
set title "hearth and nginx2 relative to nginx1 (= 1.0); $STAT of $ROUNDS rounds"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set xtics rotate by -20
set key top left
plot "$DAT" using 2:xtic(1) title "hearth", "" using 3 title "nginx1", "" using 4 title "nginx2"
EOF
    fi
fi
