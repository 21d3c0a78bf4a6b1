#!/usr/bin/env bash
# cluster.sh - run several hearth instances on loopback behind HAProxy.
#
# A single-machine model of the scale-out layout: N hearth processes on ports
# BASE, BASE+1, ... and one HAProxy in front that health-checks them
# (GET /healthz), balances round-robin and retries failed attempts elsewhere.
# Everything lives under one cluster directory (default logs/cluster/).
#
# Run "scripts/cluster.sh --help" for usage.
set -euo pipefail

# Relative paths given to cluster.sh are relative to the current directory.
HEARTH_HOME="${HEARTH_HOME:-$PWD}"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REPO_ROOT="$HEARTH_SRC"
TEMPLATE="$REPO_ROOT/scripts/haproxy/haproxy.cfg.template"
PROG="$hearth_prog"

usage() {
    cat <<EOF
Usage: $PROG COMMAND [options] [-- extra hearth arguments]

Commands:
  up                 start N hearth instances and HAProxy in front of them
  down               stop HAProxy and every instance (SIGTERM, bounded wait, SIGKILL)
  status             show each instance (pid, /healthz) and HAProxy's view (show stat);
                     exits 1 if an instance or HAProxy is down
  start-instance K   (re)start instance K (1-based) with the settings used by "up"
  stop-instance K    stop instance K gracefully (SIGTERM, bounded wait, SIGKILL)
  stat-csv           print HAProxy's raw "show stat" CSV

Options for "up" (remembered in DIR/cluster.env for the other commands):
  -n, --instances N   number of hearth instances (default 2)
  -p, --port P        HAProxy frontend port (default 8080)
  -b, --base-port B   first instance port; instance K listens on B+K-1 (default 8081)
  -s, --stats-port S  HAProxy stats page port (default 8404)
      --bind ADDR     address HAProxy and the instances listen on (default 127.0.0.1)
  -r, --root DIR      document root served by every instance (default html/)
  -t, --threads T     worker threads per instance (default 2)
      --grace S       hearth --grace, seconds to finish in-flight work on SIGTERM (default 5)
  --                  everything after this is passed to each hearth instance

Options for every command:
  -d, --dir DIR       cluster directory (default logs/cluster)
      --timeout S     seconds to wait for a process to stop before SIGKILL
                      (default: grace + 5)
  -k, --kill          stop-instance: send SIGKILL instead of SIGTERM
  -h, --help          show this help

Environment:
  HEARTH_BIN   hearth binary (default target/release/hearth; built with
               "cargo build --release" when missing)
  HAPROXY_BIN  haproxy binary (default: haproxy on PATH)

Layout of DIR:
  cluster.env              settings used by "up"
  haproxy.cfg              rendered from scripts/haproxy/haproxy.cfg.template
  haproxy.pid, haproxy.log HAProxy's pid and its log (errors/retries only)
  haproxy.sock             HAProxy stats socket (level admin)
  hK/hearth.pid            instance K's pid file (written by hearth itself)
  hK/stdout.log            instance K's stdout/stderr
  hK/logs/                 instance K's --log-dir (server.log, access.log)

Examples:
  $PROG up --instances 3 --port 8080 --base-port 8081
  curl http://127.0.0.1:8080/
  $PROG status
  $PROG down
EOF
}

# Progress goes to stderr, so that stdout carries only what a command reports.
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# ---------------------------------------------------------------- settings
CMD=""
INSTANCE=""
INSTANCES=2
PORT=8080
BASE_PORT=8081
STATS_PORT=8404
BIND=127.0.0.1
DOC_ROOT="$REPO_ROOT/html"
THREADS=2
GRACE=5
STOP_TIMEOUT=""
KILL=0
CLUSTER_DIR="$REPO_ROOT/logs/cluster"
EXTRA_ARGS=()
# Which of the "up" settings were given on this command line.
declare -A GIVEN=()

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

parse_args() {
    local need
    while (($#)); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            -n|--instances|-p|--port|-b|--base-port|-s|--stats-port|--bind|-r|--root|-t|--threads|--grace|-d|--dir|--timeout)
                need="$1"
                (($# >= 2)) || die "$need needs a value"
                case "$need" in
                    -n|--instances) INSTANCES="$2"; GIVEN[INSTANCES]=1 ;;
                    -p|--port) PORT="$2"; GIVEN[PORT]=1 ;;
                    -b|--base-port) BASE_PORT="$2"; GIVEN[BASE_PORT]=1 ;;
                    -s|--stats-port) STATS_PORT="$2"; GIVEN[STATS_PORT]=1 ;;
                    --bind) BIND="$2"; GIVEN[BIND]=1 ;;
                    -r|--root) DOC_ROOT="$(abs_path "$2")"; GIVEN[DOC_ROOT]=1 ;;
                    -t|--threads) THREADS="$2"; GIVEN[THREADS]=1 ;;
                    --grace) GRACE="$2"; GIVEN[GRACE]=1 ;;
                    -d|--dir) CLUSTER_DIR="$(abs_path "$2")" ;;
                    --timeout) STOP_TIMEOUT="$2" ;;
                esac
                shift 2
                ;;
            --instances=*|--port=*|--base-port=*|--stats-port=*|--bind=*|--root=*|--threads=*|--grace=*|--dir=*|--timeout=*)
                local opt="${1%%=*}" val="${1#*=}"
                shift
                set -- "$opt" "$val" "$@"
                ;;
            -k|--kill) KILL=1; shift ;;
            --) shift; EXTRA_ARGS=("$@"); GIVEN[EXTRA_ARGS]=1; break ;;
            -*) die "unknown option: $1 (see --help)" ;;
            *)
                if [[ -z "$CMD" ]]; then
                    CMD="$1"
                elif [[ -z "$INSTANCE" && ( "$CMD" == start-instance || "$CMD" == stop-instance ) ]]; then
                    INSTANCE="$1"
                else
                    die "unexpected argument: $1 (see --help)"
                fi
                shift
                ;;
        esac
    done
    [[ -n "$CMD" ]] || { usage >&2; exit 2; }

    local v
    for v in INSTANCES PORT BASE_PORT STATS_PORT THREADS GRACE; do
        is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
    done
    [[ -z "$STOP_TIMEOUT" ]] || is_uint "$STOP_TIMEOUT" || die "--timeout must be an integer"
    ((INSTANCES >= 1)) || die "--instances must be at least 1"
    ((BASE_PORT >= 1 && BASE_PORT + INSTANCES - 1 <= 65535)) || die "ports out of range"
    if [[ "$CMD" == up ]]; then
        ((PORT != STATS_PORT)) || die "--port and --stats-port must differ"
        local p
        for p in "$PORT" "$STATS_PORT"; do
            ((p < BASE_PORT || p >= BASE_PORT + INSTANCES)) ||
                die "port $p overlaps the instance ports $BASE_PORT-$((BASE_PORT + INSTANCES - 1))"
        done
    fi
}

save_env() {
    {
        echo "# written by cluster.sh up on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'INSTANCES=%q\n' "$INSTANCES"
        printf 'PORT=%q\n' "$PORT"
        printf 'BASE_PORT=%q\n' "$BASE_PORT"
        printf 'STATS_PORT=%q\n' "$STATS_PORT"
        printf 'BIND=%q\n' "$BIND"
        printf 'DOC_ROOT=%q\n' "$DOC_ROOT"
        printf 'THREADS=%q\n' "$THREADS"
        printf 'GRACE=%q\n' "$GRACE"
        printf 'HEARTH_BIN=%q\n' "$HEARTH_BIN"
        printf 'EXTRA_ARGS=('
        local a
        for a in "${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}"; do printf '%q ' "$a"; done
        printf ')\n'
    } >"$CLUSTER_DIR/cluster.env"
}

# Load DIR/cluster.env; settings given on the command line win.
load_env() {
    local f="$CLUSTER_DIR/cluster.env"
    [[ -f "$f" ]] || return 1
    local -A keep=()
    local v
    for v in INSTANCES PORT BASE_PORT STATS_PORT BIND DOC_ROOT THREADS GRACE; do
        [[ -n "${GIVEN[$v]:-}" ]] && keep[$v]="${!v}"
    done
    local saved_extra=("${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}")
    local env_bin="${HEARTH_BIN:-}"
    # shellcheck disable=SC1090
    source "$f"
    for v in "${!keep[@]}"; do printf -v "$v" '%s' "${keep[$v]}"; done
    [[ -n "${GIVEN[EXTRA_ARGS]:-}" ]] && EXTRA_ARGS=("${saved_extra[@]+"${saved_extra[@]}"}")
    [[ -n "$env_bin" ]] && HEARTH_BIN="$env_bin"
    return 0
}

# ---------------------------------------------------------------- helpers
connect_addr() { connect_host "$BIND"; }

port_in_use() { port_open "$(connect_addr)" "$1"; }

http_code() {
    curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$1" 2>/dev/null || true
}

# True if pid $1 is alive and its command line mentions $2 (guards against a
# recycled pid from a stale pid file).
pid_matches() {
    local pid="$1" needle="$2"
    [[ -n "$pid" ]] && proc_alive "$pid" && proc_args "$pid" || return 1
    [[ " ${PROC_ARGS[*]} " == *"$needle"* ]]
}

read_pid() { pid_read "$1" 2>/dev/null || true; }

# stop_pid PID NAME TIMEOUT SIGNAL: send SIGNAL, wait up to TIMEOUT s, then SIGKILL.
stop_pid() {
    local pid="$1" name="$2" timeout="$3" sig="${4:-TERM}"
    proc_alive "$pid" || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$timeout"; then
        log "$name (pid $pid) still running after ${timeout}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || { log "$name (pid $pid) survived SIGKILL"; return 1; }
    fi
    return 0
}

resolve_bin() {
    find_bin
    HEARTH_BIN="$BIN"
}

haproxy_bin() {
    local b="${HAPROXY_BIN:-haproxy}"
    command -v "$b" 2>/dev/null || { [[ -x /usr/sbin/haproxy ]] && echo /usr/sbin/haproxy; } ||
        die "haproxy not found (Debian/Ubuntu: apt-get install -y haproxy)"
}

inst_dir() { echo "$CLUSTER_DIR/h$1"; }
inst_port() { echo $((BASE_PORT + $1 - 1)); }

inst_pid() {
    local k="$1" d pid f
    d="$(inst_dir "$k")"
    for f in "$d/hearth.pid" "$d/launch.pid"; do
        pid="$(read_pid "$f")"
        if [[ -n "$pid" ]] && pid_matches "$pid" "$d/hearth.pid"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

haproxy_pid() {
    local pid
    pid="$(read_pid "$CLUSTER_DIR/haproxy.pid")"
    [[ -n "$pid" ]] && pid_matches "$pid" "$CLUSTER_DIR/haproxy.cfg" && echo "$pid"
}

# ---------------------------------------------------------------- instances
start_instance() {
    local k="$1" d port pid
    d="$(inst_dir "$k")"
    port="$(inst_port "$k")"
    mkdir -p "$d/logs"
    if pid="$(inst_pid "$k")"; then
        log "instance h$k already running (pid $pid, port $port)"
        return 0
    fi
    rm -f "$d/hearth.pid" "$d/launch.pid"   # stale, e.g. after SIGKILL
    port_in_use "$port" && die "port $port (instance h$k) is already in use"

    printf '=== %s starting h%s\n' "$(date -u +%FT%TZ)" "$k" >>"$d/stdout.log"
    # setsid: the instance outlives this script and ignores the terminal's signals.
    setsid "$HEARTH_BIN" --port "$port" --bind "$BIND" --root "$DOC_ROOT" \
        --threads "$THREADS" --grace "$GRACE" --log-dir "$d/logs" \
        --pid-file "$d/hearth.pid" \
        "${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}" \
        >>"$d/stdout.log" 2>&1 </dev/null &
    echo $! >"$d/launch.pid"

    local url
    url="http://$(connect_addr):$port/healthz"
    ready() { [[ -s "$d/hearth.pid" && "$(http_code "$url")" == 200 ]]; }
    alive() { proc_alive "$(read_pid "$d/launch.pid")" || [[ -s "$d/hearth.pid" ]]; }
    local end=$((SECONDS + 15))
    until ready; do
        if ! alive; then
            tail -n 20 "$d/stdout.log" >&2 || true
            die "instance h$k exited during startup (see $d/stdout.log)"
        fi
        if ((SECONDS >= end)); then
            tail -n 20 "$d/stdout.log" >&2 || true
            die "instance h$k not ready within 15s ($url)"
        fi
        sleep 0.1
    done
    log "h$k up: pid $(read_pid "$d/hearth.pid"), http://$(connect_addr):$port/"
}

stop_instance() {
    local k="$1" sig="${2:-TERM}" d pid timeout
    d="$(inst_dir "$k")"
    timeout="${STOP_TIMEOUT:-$((GRACE + 5))}"
    if ! pid="$(inst_pid "$k")"; then
        log "instance h$k is not running"
        return 0
    fi
    log "stopping h$k (pid $pid, SIG$sig, up to ${timeout}s)"
    stop_pid "$pid" "h$k" "$timeout" "$sig"
    # hearth removes its pid file on a clean exit; after SIGKILL it stays.
    [[ "$sig" == KILL ]] || rm -f "$d/launch.pid"
}

# ---------------------------------------------------------------- haproxy
render_config() {
    local servers="" k
    for ((k = 1; k <= INSTANCES; k++)); do
        servers+="    server h$k $(connect_addr):$(inst_port "$k") check"$'\n'
    done
    [[ -f "$TEMPLATE" ]] || die "template missing: $TEMPLATE"
    awk -v bind="$BIND" -v port="$PORT" -v sport="$STATS_PORT" \
        -v dir="$CLUSTER_DIR" -v servers="${servers%$'\n'}" '
        /^@SERVERS@$/ { print servers; next }
        {
            gsub(/@BIND@/, bind); gsub(/@PORT@/, port)
            gsub(/@STATS_PORT@/, sport); gsub(/@CLUSTER_DIR@/, dir)
            print
        }' "$TEMPLATE" >"$CLUSTER_DIR/haproxy.cfg"
}

start_haproxy() {
    local hap pid
    hap="$(haproxy_bin)"
    if pid="$(haproxy_pid)"; then
        log "haproxy already running (pid $pid)"
        return 0
    fi
    port_in_use "$PORT" && die "port $PORT (HAProxy frontend) is already in use"
    port_in_use "$STATS_PORT" && die "port $STATS_PORT (HAProxy stats) is already in use"
    render_config
    "$hap" -c -q -f "$CLUSTER_DIR/haproxy.cfg" || die "invalid $CLUSTER_DIR/haproxy.cfg"
    rm -f "$CLUSTER_DIR/haproxy.sock"
    printf '=== %s starting haproxy\n' "$(date -u +%FT%TZ)" >>"$CLUSTER_DIR/haproxy.log"
    # Foreground mode (-db) so the log goes to haproxy.log; setsid detaches it.
    setsid "$hap" -db -f "$CLUSTER_DIR/haproxy.cfg" >>"$CLUSTER_DIR/haproxy.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$CLUSTER_DIR/haproxy.pid"
    local stats
    stats="http://$(connect_addr):$STATS_PORT/haproxy?stats"
    if ! wait_until 10 bash -c '[[ "$(curl -s -o /dev/null --max-time 1 -w "%{http_code}" "$1")" == 200 ]]' _ "$stats"; then
        tail -n 20 "$CLUSTER_DIR/haproxy.log" >&2 || true
        die "haproxy did not come up within 10s"
    fi
    log "haproxy up: pid $pid, http://$(connect_addr):$PORT/ (stats $stats)"
}

stop_haproxy() {
    local pid
    if ! pid="$(haproxy_pid)"; then
        log "haproxy is not running"
        rm -f "$CLUSTER_DIR/haproxy.pid"
        return 0
    fi
    # SIGUSR1 = soft stop: close listeners, let open sessions finish.
    log "stopping haproxy (pid $pid, soft stop)"
    stop_pid "$pid" haproxy 5 USR1
    rm -f "$CLUSTER_DIR/haproxy.pid" "$CLUSTER_DIR/haproxy.sock"
}

# Print "show stat" CSV: stats socket via socat or python3, else the HTTP ;csv page.
stat_csv() {
    local sock="$CLUSTER_DIR/haproxy.sock"
    if [[ -S "$sock" ]]; then
        if command -v socat >/dev/null 2>&1; then
            echo "show stat" | timeout 3 socat stdio "unix-connect:$sock" && return 0
        elif command -v python3 >/dev/null 2>&1; then
            timeout 3 python3 - "$sock" <<'PY' && return 0
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
buf = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.decode())
PY
        fi
    fi
    curl -sf --max-time 2 "http://$(connect_addr):$STATS_PORT/haproxy?stats;csv"
}

# Format the CSV as a table of the interesting columns (looked up by name).
stat_table() {
    awk -F, '
        NR == 1 {
            sub(/^# /, "")
            for (i = 1; i <= NF; i++) col[$i] = i
            n = split("pxname svname status check_status scur stot hrsp_2xx hrsp_5xx econ eresp wretr wredis chkdown lastchg", want, " ")
            for (j = 1; j <= n; j++) printf "%-12s%s", want[j], (j < n ? " " : "\n")
            next
        }
        NF > 1 {
            for (j = 1; j <= n; j++) {
                v = (want[j] in col) ? $(col[want[j]]) : "-"
                if (v == "") v = "-"
                printf "%-12s%s", v, (j < n ? " " : "\n")
            }
        }'
}

# ---------------------------------------------------------------- commands
cmd_up() {
    [[ -f "$TEMPLATE" ]] || die "template missing: $TEMPLATE"
    resolve_bin
    haproxy_bin >/dev/null
    command -v curl >/dev/null || die "curl not found (apt-get install -y curl)"
    [[ -d "$DOC_ROOT" ]] || die "document root not found: $DOC_ROOT"
    mkdir -p "$CLUSTER_DIR"
    if [[ -f "$CLUSTER_DIR/cluster.env" ]]; then
        # Refuse to clobber a running cluster with different settings.
        if haproxy_pid >/dev/null; then
            die "a cluster is already running in $CLUSTER_DIR (run: $PROG down --dir $CLUSTER_DIR)"
        fi
    fi
    local p
    for p in "$PORT" "$STATS_PORT" $(seq "$BASE_PORT" $((BASE_PORT + INSTANCES - 1))); do
        port_in_use "$p" && die "port $p is already in use"
    done
    save_env
    # If anything below fails, stop what was already started.
    trap 'log "startup failed; stopping what was started"; cmd_down >/dev/null 2>&1 || true' EXIT
    local k
    for ((k = 1; k <= INSTANCES; k++)); do start_instance "$k"; done
    start_haproxy
    trap - EXIT
    # Wait until HAProxy's health checks see every instance UP.
    local want=$INSTANCES
    all_up() {
        local n
        n="$(stat_csv 2>/dev/null | awk -F, '$1 == "be_hearth" && $2 ~ /^h[0-9]+$/ && $18 ~ /^UP/' | wc -l)"
        ((n == want))
    }
    wait_until 10 all_up || log "warning: not every instance is UP in HAProxy yet (see: $PROG status)"
    cat <<EOF

hearth cluster is up ($INSTANCES instances)
  entry point : http://$(connect_addr):$PORT/
  stats page  : http://$(connect_addr):$STATS_PORT/haproxy?stats   (CSV: append ;csv)
  stats socket: $CLUSTER_DIR/haproxy.sock   (echo "show stat" | socat stdio unix-connect:...)
  haproxy     : cfg $CLUSTER_DIR/haproxy.cfg, log $CLUSTER_DIR/haproxy.log
  instances   : $CLUSTER_DIR/hK/{hearth.pid,stdout.log,logs/}, ports $BASE_PORT-$((BASE_PORT + INSTANCES - 1))
  binary      : $HEARTH_BIN
stop with: $PROG down --dir $CLUSTER_DIR
EOF
}

cmd_down() {
    load_env || { log "no cluster in $CLUSTER_DIR (no cluster.env)"; return 0; }
    stop_haproxy
    local k
    # Stop instances in parallel so the total wait is one grace period.
    local pids=()
    for ((k = 1; k <= INSTANCES; k++)); do
        stop_instance "$k" &
        pids+=($!)
    done
    local rc=0 p
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    if ((rc == 0)); then
        log "cluster in $CLUSTER_DIR stopped"
    else
        log "some processes could not be stopped"
    fi
    return "$rc"
}

cmd_status() {
    load_env || die "no cluster in $CLUSTER_DIR (no cluster.env); start one with: $PROG up"
    local k pid port code rc=0
    printf '%-6s %-7s %-8s %-6s %s\n' NAME STATE PID PORT HEALTHZ
    for ((k = 1; k <= INSTANCES; k++)); do
        port="$(inst_port "$k")"
        if pid="$(inst_pid "$k")"; then
            code="$(http_code "http://$(connect_addr):$port/healthz")"
            printf '%-6s %-7s %-8s %-6s %s\n' "h$k" up "$pid" "$port" "${code:-000}"
        else
            printf '%-6s %-7s %-8s %-6s %s\n' "h$k" down - "$port" -
            rc=1
        fi
    done
    echo
    if pid="$(haproxy_pid)"; then
        echo "haproxy: up (pid $pid), frontend http://$(connect_addr):$PORT/, stats http://$(connect_addr):$STATS_PORT/haproxy?stats"
        local csv
        if csv="$(stat_csv)"; then
            printf '%s\n' "$csv" | stat_table
        else
            echo "(could not read HAProxy stats)"
            rc=1
        fi
    else
        echo "haproxy: down"
        rc=1
    fi
    return "$rc"
}

check_instance_arg() {
    [[ -n "$INSTANCE" ]] || die "$CMD needs an instance number"
    is_uint "$INSTANCE" && ((INSTANCE >= 1 && INSTANCE <= INSTANCES)) ||
        die "instance must be between 1 and $INSTANCES, got '$INSTANCE'"
}

main() {
    parse_args "$@"
    case "$CMD" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        start-instance)
            load_env || die "no cluster in $CLUSTER_DIR; run: $PROG up"
            check_instance_arg
            resolve_bin
            start_instance "$INSTANCE"
            ;;
        stop-instance)
            load_env || die "no cluster in $CLUSTER_DIR; run: $PROG up"
            check_instance_arg
            if ((KILL)); then stop_instance "$INSTANCE" KILL; else stop_instance "$INSTANCE" TERM; fi
            ;;
        stat-csv)
            load_env || die "no cluster in $CLUSTER_DIR; run: $PROG up"
            stat_csv
            ;;
        *) die "unknown command: $CMD (see --help)" ;;
    esac
}

main "$@"
