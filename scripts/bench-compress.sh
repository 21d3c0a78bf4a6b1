#!/usr/bin/env bash
# scripts/bench-compress.sh: compression on the fly, hearth against nginx `gzip on`.
#
# Everything it starts is stopped by PID on exit, every load run is bounded by
# `timeout`, and its temp dir is removed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<'EOF'
Usage: scripts/bench-compress.sh [options]

Two measurements of compression on the fly:

  req/s    a 100 KiB script requested with Accept-Encoding: gzip by
           wrk -t1 -cC -dDs, from hearth (compresses once, then serves the
           cached variant) and from nginx with `gzip on` and one worker
           (compresses every response, gzip_comp_level 1 by default);
           alternating rounds, median shown, plus each gzip body's size.
  RSS      N distinct files of 200 KiB requested compressed (curl --compressed,
           4 at a time) from hearth with --compress-cache SIZE: the server's RSS
           before, after, and its peak, against the cache size.

Options:
  --file PATH        the script to serve (default: a generated 100 KiB script)
  --rounds N         rounds of the req/s run (default 3)
  --duration S       seconds per wrk run (default 5)
  --connections C    wrk -c (default 50)
  --hearth-threads N hearth --threads (default: hearth's own)
  --files N          files in the RSS run (default 300)
  --cache SIZE       hearth --compress-cache in the RSS run (default 8M)
  --no-rss           skip the RSS run
  -h, --help         this help

Environment: HEARTH_BIN (default: target/release/hearth, built first), WRK,
NGINX.
EOF
}

die() { echo "bench-compress.sh: error: $*" >&2; exit 1; }
note() { echo "==> $*" >&2; }

FILE="" ROUNDS=3 DURATION=5 CONNS=50 THREADS="" NFILES=300 CACHE=8M DO_RSS=1
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --file) FILE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --hearth-threads) THREADS=$2; shift 2 ;;
        --files) NFILES=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --no-rss) DO_RSS=0; shift ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for n in "$ROUNDS" "$DURATION" "$CONNS" "$NFILES"; do
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "not a positive number: $n"
done

read -ra WRK_CMD <<<"${WRK:-wrk}"
read -ra NGINX_CMD <<<"${NGINX:-nginx}"
for t in "${WRK_CMD[0]}" "${NGINX_CMD[0]}" curl python3 timeout; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (apt-get install wrk nginx-light curl python3)"
done
if [[ -n ${HEARTH_BIN:-} ]]; then
    BIN=$HEARTH_BIN
else
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "build failed"
    BIN=$REPO_DIR/target/release/hearth
fi
[[ -x $BIN ]] || die "no executable $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench-compress.XXXXXX")
declare -a PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port
    for _ in $(seq 100); do
        timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on port $1"
}

# gen_script PATH BYTES SEED: a script that compresses the way real code does.
gen_script() {
    python3 - "$1" "$2" "$3" <<'PY'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
words = ["state", "props", "event", "target", "value", "items", "render", "update",
         "options", "config", "handler", "element", "document", "window", "result",
         "callback", "promise", "response", "request", "length", "index", "node"]
out, i = [], 0
while sum(map(len, out)) < size:
    a, b, c = (rnd.choice(words) for _ in range(3))
    kind = rnd.randrange(4)
    if kind == 0:
        out.append(f"  function {a}{i}({b}, {c}) {{\n    if ({b}.{c} === {rnd.randrange(100)}) return {a}({c});\n")
    elif kind == 1:
        out.append(f"    const {a}_{i} = {b}.{c}.map(({a}) => {a}.{rnd.choice(words)} + {rnd.randrange(1000)});\n")
    elif kind == 2:
        out.append(f"    {b}.addEventListener('{c}', function () {{ {a}.{rnd.choice(words)}({b}); }});\n  }}\n")
    else:
        out.append(f"  // {a} {b} {c}: keep the {rnd.choice(words)} in sync with the {rnd.choice(words)}\n")
    i += 1
open(path, "w").write("".join(out)[:size])
PY
}

mkdir -p "$TMP/www" "$TMP/logs"
if [[ -n $FILE ]]; then
    head -c $((100 * 1024)) "$FILE" >"$TMP/www/app.js"
else
    gen_script "$TMP/www/app.js" $((100 * 1024)) 1
fi
SIZE=$(stat -c %s "$TMP/www/app.js")

# ---------------------------------------------------------------- servers
HPORT=$(free_port)
hargs=(-p "$HPORT" --bind 127.0.0.1 -r "$TMP/www" --log-dir "$TMP/logs" --access-log off)
[[ -z $THREADS ]] || hargs+=(--threads "$THREADS")
"$BIN" "${hargs[@]}" >"$TMP/hearth.out" 2>&1 &
PIDS+=($!)
HPID=$!
wait_port "$HPORT"

NPORT=$(free_port)
mkdir -p "$TMP/nginx"
user_line=""
[[ $(id -u) -ne 0 ]] || user_line="user root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    types { application/javascript js; }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    gzip on;
    gzip_types application/javascript;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NPORT backlog=4096;
        root $TMP/www;
        location / { }
    }
}
EOF
"${NGINX_CMD[@]}" -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/out.log" 2>&1 &
PIDS+=($!)
wait_port "$NPORT"

# ---------------------------------------------------------------- bodies
body_size() { # port
    curl -sS --max-time 10 -H 'Accept-Encoding: gzip' -o "$TMP/body" -D "$TMP/head" "http://127.0.0.1:$1/app.js"
    grep -qi '^content-encoding: gzip' "$TMP/head" || die "port $1 did not send gzip"
    gunzip -c "$TMP/body" | cmp -s - "$TMP/www/app.js" || die "port $1: the gzip body does not decode to the file"
    stat -c %s "$TMP/body"
}
HBODY=$(body_size "$HPORT")
NBODY=$(body_size "$NPORT")

# ---------------------------------------------------------------- req/s
wrk_rps() { # port
    timeout $((DURATION + 30)) "${WRK_CMD[@]}" -t1 -c"$CONNS" -d"${DURATION}s" \
        -H 'Accept-Encoding: gzip' "http://127.0.0.1:$1/app.js" >"$TMP/wrk.out" 2>&1 ||
        die "wrk failed: $(cat "$TMP/wrk.out")"
    if grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out"; then
        echo "bench-compress.sh: warning: errors in wrk run: $(grep 'Non-2xx\|Socket errors' "$TMP/wrk.out")" >&2
    fi
    awk '/^Requests\/sec:/ {print int($2)}' "$TMP/wrk.out"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hs=() ns=()
for r in $(seq "$ROUNDS"); do
    h=$(wrk_rps "$HPORT"); sleep 1
    n=$(wrk_rps "$NPORT"); sleep 1
    note "round $r: hearth $h req/s, nginx $n req/s"
    hs+=("$h") ns+=("$n")
done
HM=$(median "${hs[@]}")
NM=$(median "${ns[@]}")
echo "gzip of a ${SIZE}-byte script, wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS rounds"
printf '%-24s %10s %12s\n' server 'req/s' 'gzip bytes'
printf '%-24s %10s %12s\n' "hearth" "$HM" "$HBODY"
printf '%-24s %10s %12s\n' "nginx gzip on, 1 worker" "$NM" "$NBODY"
awk -v h="$HM" -v n="$NM" 'BEGIN { if (n > 0) printf "hearth/nginx: %.1fx\n", h / n }'

# ---------------------------------------------------------------- RSS
[[ $DO_RSS -eq 1 ]] || exit 0
kill -TERM "$HPID" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$HPID" 2>/dev/null || break; sleep 0.1; done
mkdir -p "$TMP/many"
note "writing $NFILES files of 200 KiB"
python3 - "$TMP/many" "$NFILES" <<'PY'
import random, sys
d, n = sys.argv[1], int(sys.argv[2])
words = [f"w{i}" for i in range(400)]
for k in range(n):
    rnd = random.Random(k)
    lines, size = [], 0
    while size < 200 * 1024:
        line = " ".join(rnd.choice(words) for _ in range(12)) + f" = {rnd.randrange(10**6)};\n"
        lines.append(line)
        size += len(line)
    open(f"{d}/f{k}.js", "w").write("".join(lines)[:200 * 1024])
PY
HPORT=$(free_port)
rargs=(-p "$HPORT" --bind 127.0.0.1 -r "$TMP/many" --log-dir "$TMP/logs" --access-log off
    --compress-cache "$CACHE" --stats-path /_stats)
[[ -z $THREADS ]] || rargs+=(--threads "$THREADS")
"$BIN" "${rargs[@]}" >"$TMP/hearth2.out" 2>&1 &
HPID=$!
PIDS+=("$HPID")
wait_port "$HPORT"
rss() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# One compressed request first, so the baseline includes the encoders' start-up.
curl -sS --max-time 10 --compressed -o /dev/null "http://127.0.0.1:$HPORT/f0.js"
BEFORE=$(rss "$HPID" VmRSS)
seq 0 $((NFILES - 1)) | xargs -P 4 -I{} curl -sS --max-time 30 --compressed -o /dev/null \
    "http://127.0.0.1:$HPORT/f{}.js"
AFTER=$(rss "$HPID" VmRSS)
PEAK=$(rss "$HPID" VmHWM)
STATS=$(curl -sS --max-time 5 "http://127.0.0.1:$HPORT/_stats" | grep '^compress_cache:')
echo
echo "$NFILES files of 200 KiB requested compressed (curl --compressed: br), --compress-cache $CACHE"
echo "RSS before: ${BEFORE} KiB; after: ${AFTER} KiB (+$((AFTER - BEFORE)) KiB); peak: ${PEAK} KiB"
echo "$STATS"
