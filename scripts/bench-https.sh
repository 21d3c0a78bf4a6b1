#!/usr/bin/env bash
# scripts/bench-https.sh: hearth and nginx over HTTPS, same certificate, same
# corpus, alternating rounds. Run by `scripts/bench.sh --https [options]`, or
# directly. Everything it starts is stopped by PID on exit; its temp dir is removed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<'EOF'
Usage: scripts/bench.sh --https [options]

hearth (target/release/hearth) against nginx with 1 worker
(ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m), both with
the same ECDSA P-256 certificate, on loopback, in alternating rounds.

Workloads (per round, per server):
  keep-alive   wrk -t1 -c50 -dSs https://.../index.html (1 KiB)     -> req/s
  new conns    the same with -H 'Connection: close': one full TLS
               handshake per request (wrk does not resume sessions)  -> req/s
  big file     wrk -t1 -c4 -dSs https://.../10m.bin (10 MiB)        -> MiB/s
  idle         N TLS connections (handshake plus one keep-alive request each)
               opened and held -> server RSS growth per connection

Options:
  --rounds N          rounds per workload (default 3)
  --duration S        seconds per wrk run (default 3)
  --connections N     wrk -c for the keep-alive and new-connection runs (default 50)
  --idle-conns N      connections held by the idle workload (default 2000)
  --hearth-args ARGS  extra hearth arguments, word-split (e.g. "--threads 1")
  -h, --help          this text

Each wrk run also reports the server's CPU time (user + system, from
/proc/PID/stat, nginx's workers included) per request: on a machine shared with
the load generator or other work, a steadier figure than req/s.

Prints one line per round and a median table (Markdown) at the end.
EOF
}

ROUNDS=3
DURATION=3
CONNS=50
IDLE=2000
HEARTH_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --idle-conns) IDLE=$2; shift 2 ;;
        --hearth-args) HEARTH_ARGS=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-https: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

HEARTH="$REPO_DIR/target/release/hearth"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$HEARTH" "$NGINX" wrk openssl python3; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$tool" ]; then
        echo "bench-https: $tool not found (build hearth with cargo build --release)" >&2
        exit 1
    fi
done

TMP=$(mktemp -d /tmp/hearth-bench-https.XXXXXX)
# nginx's worker runs as an unprivileged user when started as root: it must be
# able to read the corpus.
chmod 755 "$TMP"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    sleep 0.2
    rm -rf "$TMP"
}
trap cleanup EXIT

# The corpus and one ECDSA P-256 certificate for both servers.
mkdir -p "$TMP/www" "$TMP/logs" "$TMP/nginx"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 > "$TMP/www/index.html"
head -c $((10 << 20)) /dev/urandom > "$TMP/www/10m.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

HEARTH_PORT=18543
NGINX_PORT=18643
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 20000; }
worker_rlimit_nofile 40000;
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    types { text/html html; application/octet-stream bin; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        root $TMP/www;
    }
}
EOF

ulimit -n 40000 2>/dev/null || true

start_hearth() {
    # shellcheck disable=SC2086
    "$HEARTH" --bind 127.0.0.1 --port 0 --tls-port "$HEARTH_PORT" \
        --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" -r "$TMP/www" \
        --log-dir "$TMP/logs" --access-log off --max-conns 30000 $HEARTH_ARGS \
        > "$TMP/hearth.out" 2>&1 &
    HEARTH_PID=$!
    PIDS+=("$HEARTH_PID")
}
start_nginx() {
    "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g 'daemon off;' 2>"$TMP/nginx/stderr" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}
wait_port() {
    for _ in $(seq 100); do
        if [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$1/index.html")" = 200 ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench-https: no 200 for /index.html on port $1" >&2
    exit 1
}

# Resident memory (KiB) of a process and its children (nginx's workers).
rss_tree() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

wrk_rps() { awk '/^Requests\/sec/ {print $2}'; }
# Errors wrk saw (socket errors and non-2xx/3xx answers), summed.
wrk_errors() {
    awk '/Socket errors/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i }
         /Non-2xx or 3xx/ { n += $NF } END { print n + 0 }'
}
# CPU time (clock ticks) a server process and its children (nginx's workers) used.
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# Server CPU per request in microseconds over one wrk run: ticks delta, requests.
cpu_per_req() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.1f\n", t * 1e6 / hz / n; else print 0 }'
}
wrk_requests() { awk '/requests in/ {print $1}'; }
run_wrk() { # PID OUTFILE wrk-args... ; sets RUN_CPU (µs of server CPU per request)
    local pid=$1 out=$2 before after; shift 2
    before=$(cpu_ticks "$pid")
    wrk "$@" > "$out" 2>&1 || true
    after=$(cpu_ticks "$pid")
    RUN_CPU=$(cpu_per_req $((after - before)) "$(wrk_requests < "$out")")
}
wrk_mibs() {
    awk '/^Transfer\/sec/ {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
        if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024
        printf "%.0f\n", v }'
}

# Opens N TLS connections, one request each, holds them until stdin closes.
IDLE_PY='
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while not got.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in got:
        got += s.recv(4096)
    head, _, body = got.partition(b"\r\n\r\n")
    need = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < need:
        body += s.recv(4096)
    held.append(s)
print("ready", len(held), flush=True)
sys.stdin.read()
'

idle_per_conn() { # PORT PID -> bytes per connection
    local before after
    before=$(rss_tree "$2")
    coproc HOLD { python3 -c "$IDLE_PY" "$1" "$IDLE"; }
    read -r _ready _n <&"${HOLD[0]}"
    sleep 0.5
    after=$(rss_tree "$2")
    exec {HOLD[1]}>&-
    wait "$HOLD_PID" 2>/dev/null || true
    echo $(( (after - before) * 1024 / IDLE ))
}

declare -A KA NEW BIG IDLEB CKA CNEW CBIG
start_hearth
start_nginx
wait_port "$HEARTH_PORT"
wait_port "$NGINX_PORT"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
for r in $(seq "$ROUNDS"); do
    for s in hearth nginx; do
        if [ "$s" = hearth ]; then port=$HEARTH_PORT; pid=$HEARTH_PID; else port=$NGINX_PORT; pid=$NGINX_PID; fi
        url="https://127.0.0.1:$port"
        run_wrk "$pid" "$TMP/ka" -t1 -c"$CONNS" -d"${DURATION}s" "$url/index.html"
        cka=$RUN_CPU
        run_wrk "$pid" "$TMP/nc" -t1 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "$url/index.html"
        cnc=$RUN_CPU
        run_wrk "$pid" "$TMP/big" -t1 -c4 -d"${DURATION}s" "$url/10m.bin"
        cbig=$RUN_CPU
        ka=$(wrk_rps < "$TMP/ka"); nc=$(wrk_rps < "$TMP/nc"); big=$(wrk_mibs < "$TMP/big")
        errs="$(wrk_errors < "$TMP/ka")/$(wrk_errors < "$TMP/nc")/$(wrk_errors < "$TMP/big")"
        KA[$s]+="$ka "; NEW[$s]+="$nc "; BIG[$s]+="$big "
        CKA[$s]+="$cka "; CNEW[$s]+="$cnc "; CBIG[$s]+="$cbig "
        echo "round $r $s: keep-alive $ka req/s (${cka} us CPU/req), new TLS conn $nc req/s (${cnc} us), 10 MiB $big MiB/s (${cbig} us/file) (errors $errs)"
    done
done
for s in hearth nginx; do
    if [ "$s" = hearth ]; then port=$HEARTH_PORT; pid=$HEARTH_PID; else port=$NGINX_PORT; pid=$NGINX_PID; fi
    IDLEB[$s]=$(idle_per_conn "$port" "$pid")
    echo "idle $s: ${IDLEB[$s]} bytes per TLS connection ($IDLE held)"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
h_ka=$(echo "${KA[hearth]}" | median); n_ka=$(echo "${KA[nginx]}" | median)
h_nc=$(echo "${NEW[hearth]}" | median); n_nc=$(echo "${NEW[nginx]}" | median)
h_big=$(echo "${BIG[hearth]}" | median); n_big=$(echo "${BIG[nginx]}" | median)
echo
echo "| HTTPS workload (median of $ROUNDS) | hearth | nginx (1 worker) | hearth / nginx |"
echo "|---|---:|---:|---:|"
echo "| keep-alive 1 KiB, req/s | $h_ka | $n_ka | $(ratio "$h_ka" "$n_ka") |"
echo "| new TLS connection per request, req/s | $h_nc | $n_nc | $(ratio "$h_nc" "$n_nc") |"
echo "| 10 MiB file, MiB/s | $h_big | $n_big | $(ratio "$h_big" "$n_big") |"
echo "| memory per idle TLS connection, bytes | ${IDLEB[hearth]} | ${IDLEB[nginx]} | $(ratio "${IDLEB[hearth]}" "${IDLEB[nginx]}") |"
for w in CKA CNEW CBIG; do
    declare -n col=$w
    h=$(echo "${col[hearth]}" | median); n=$(echo "${col[nginx]}" | median)
    case $w in
        CKA) name="server CPU per keep-alive request, us" ;;
        CNEW) name="server CPU per new-connection request, us" ;;
        CBIG) name="server CPU per 10 MiB response, us" ;;
    esac
    echo "| $name | $h | $n | $(ratio "$h" "$n") |"
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
