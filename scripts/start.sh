#!/usr/bin/env bash
# Start hearth as a background daemon (or in the foreground).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [OPTIONS] [--] [SERVER FLAGS...]

Start the hearth server detached from the terminal, wait until it answers on
its port, and print its URL.  Builds it first (cargo build --release) when
target/release/hearth is missing or older than src/ or Cargo.toml; a failed
build leaves a running server alone.

Options (before the server flags):
  --pid-file FILE   pid file (default: $HEARTH_DEFAULT_PID_FILE).  Refuses to start
                    while the process named in it runs; a stale file is removed.
  --log-dir DIR     the server's --log-dir, and where its stdout.log goes
                    (default: $HEARTH_DEFAULT_LOG_DIR)
  --foreground      run attached to the terminal (exec; for systemd, docker)
  --restart         stop the running server first (stop.sh), then start;
                    without server flags, the flags it was started with are
                    used again
  --instances N     run N servers sharing the port (--reuseport), with pid
                    files server-1.pid ... and log dirs LOG_DIR/instance-1 ...
  --wait SECONDS    how long to wait for the port to answer (default: 10)
  --stop-timeout S  with --restart: passed to stop.sh --timeout
  -h, --help        this help

Everything else is passed to the server, e.g. -p 8080 -r /srv/www --grace 20
(see: hearth --help).  Unless they name a --stats-path, the live counters are
served at /_stats (loopback only; status.sh shows them).  The server runs in
\$HEARTH_HOME ($HEARTH_HOME); relative paths are relative to it.  Its
stdout/stderr go to LOG_DIR/stdout.log.

Environment:
  HEARTH_BIN   server binary to run (no build step)
  HEARTH_HOME  project directory (default: the parent of scripts/)

Exit status: 0 started; 1 failed to start, or already running.
EOF
}

# ------------------------------------------------------------ options

foreground=0
restart=0
instances=0
wait_s=10
stop_timeout=""
opt_pid_file=""
opt_log_dir=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --foreground) foreground=1; shift ;;
        --restart) restart=1; shift ;;
        --instances) [[ $# -ge 2 ]] || die "--instances needs a number"; instances="$2"; shift 2 ;;
        --instances=*) instances="${1#*=}"; shift ;;
        --wait) [[ $# -ge 2 ]] || die "--wait needs seconds"; wait_s="$2"; shift 2 ;;
        --wait=*) wait_s="${1#*=}"; shift ;;
        --stop-timeout) [[ $# -ge 2 ]] || die "--stop-timeout needs seconds"; stop_timeout="$2"; shift 2 ;;
        --stop-timeout=*) stop_timeout="${1#*=}"; shift ;;
        --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; opt_pid_file="$2"; shift 2 ;;
        --pid-file=*) opt_pid_file="${1#*=}"; shift ;;
        --log-dir) [[ $# -ge 2 ]] || die "--log-dir needs a directory"; opt_log_dir="$2"; shift 2 ;;
        --log-dir=*) opt_log_dir="${1#*=}"; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[[ "$instances" =~ ^[0-9]+$ ]] || die "--instances: not a number: $instances"
[[ "$wait_s" =~ ^[0-9]+$ && "$wait_s" -gt 0 ]] || die "--wait: not a positive number: $wait_s"
if [[ $foreground -eq 1 && ( $instances -gt 0 || $restart -eq 1 ) ]]; then
    die "--foreground cannot be combined with --instances or --restart"
fi

cd "$HEARTH_HOME"

user_flags=("$@")
pid_file="$(abs_path "${opt_pid_file:-$HEARTH_DEFAULT_PID_FILE}")"
args_file="${pid_file%.pid}.args"

# ------------------------------------------------------------ binary

find_bin
bin="$BIN"

# ------------------------------------------------------------ restart

# save_args: remember the flags and instance count, for --restart without flags.
save_args() {
    mkdir -p "$(dirname "$args_file")"
    printf '%s\0' "instances=$instances" "log_dir=$log_dir" "${user_flags[@]}" >"$args_file"
}

if [[ $restart -eq 1 ]]; then
    if [[ ${#user_flags[@]} -eq 0 ]]; then
        old=()
        if [[ -r "$args_file" ]]; then
            mapfile -d '' -t old <"$args_file"
        fi
        if [[ ${#old[@]} -gt 0 && "${old[0]}" == instances=* ]]; then
            if [[ "$instances" -eq 0 ]]; then instances="${old[0]#instances=}"; fi
            old=("${old[@]:1}")
            if [[ ${#old[@]} -gt 0 && "${old[0]}" == log_dir=* ]]; then
                if [[ -z "$opt_log_dir" ]]; then opt_log_dir="${old[0]#log_dir=}"; fi
                old=("${old[@]:1}")
            fi
            user_flags=("${old[@]+"${old[@]}"}")
        fi
        if [[ ${#user_flags[@]} -gt 0 ]]; then
            info "restarting with the previous flags: ${user_flags[*]}"
        fi
    fi
    stop_args=(--pid-file "$pid_file")
    if [[ -n "$stop_timeout" ]]; then stop_args+=(--timeout "$stop_timeout"); fi
    "$HEARTH_SRC/scripts/stop.sh" "${stop_args[@]}"
fi

log_dir="$(abs_path "${opt_log_dir:-$HEARTH_DEFAULT_LOG_DIR}")"

# ------------------------------------------------------------ already running?

mkdir -p "$(dirname "$pid_file")"
# Serialize concurrent start.sh runs on the same pid file.  The lock is not
# passed on to the server (9>&- below).
if command -v flock >/dev/null 2>&1; then
    exec 9>>"${pid_file%.pid}.lock"
    flock -n 9 || die "another start.sh is starting a server on $pid_file"
fi

while IFS= read -r f; do
    if pid="$(running_pid "$f")"; then
        die "hearth is already running (pid $pid, pid file $f); stop it with stop.sh or use --restart"
    fi
    if [[ -e "$f" ]]; then
        stale="$(pid_read "$f" 2>/dev/null || echo '?')"
        info "removing stale pid file $f (pid $stale is not running)"
        rm -f -- "$f"
    fi
done < <(pid_files_for "$pid_file")

# ------------------------------------------------------------ server flags

# What start.sh adds to the user's flags; the server's own parser says which
# of them the user already gave.
for own in --pid-file --log-dir; do
    if given_to_server "$bin" "$own" x "${user_flags[@]}"; then
        die "give $own before the server flags: it is a start.sh option (see --help)"
    fi
done
added=()
if ! given_to_server "$bin" --stats-path /x "${user_flags[@]}"; then
    added+=(--stats-path /_stats)
fi
if [[ $instances -gt 0 ]] && ! given_to_server "$bin" --reuseport "" "${user_flags[@]}"; then
    added+=(--reuseport)
fi

# One descriptor per connection: raise the soft open-files limit to the hard
# one (what systemd's LimitNOFILE= does for the unit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A hearth.toml at the top of the checkout is the configuration file, unless
# the flags name one (flags on the command line still override it).
if [[ -f "$HEARTH_SRC/hearth.toml" && " ${user_flags[*]} " != *" --config"* ]]; then
    info "using $HEARTH_SRC/hearth.toml (--config)"
    user_flags=(--config "$HEARTH_SRC/hearth.toml" "${user_flags[@]}")
    parse_server_flags "${user_flags[@]}"
fi

# ------------------------------------------------------------ foreground

if [[ $foreground -eq 1 ]]; then
    mkdir -p "$log_dir"
    exec 9>&-
    exec "$bin" "${user_flags[@]}" "${added[@]}" --log-dir "$log_dir" --pid-file "$pid_file"
fi

# ------------------------------------------------------------ daemon

# print_failure OUT OFFSET LOGDIR LOG_OFFSET: show why a start failed: what
# this start added to stdout.log and server.log.
print_failure() {
    local out="$1" offset="$2" dir="$3" log_offset="$4"
    {
        echo "---- last lines of $out:"
        tail -c "+$((offset + 1))" "$out" 2>/dev/null | tail -n 20 || true
        if [[ "$(file_size "$dir/server.log")" -gt "$log_offset" ]]; then
            echo "---- last lines of $dir/server.log:"
            tail -c "+$((log_offset + 1))" "$dir/server.log" 2>/dev/null | tail -n 20 || true
        fi
    } >&2
}

# file_size FILE: size in bytes, 0 when missing.
file_size() {
    if [[ -e "$1" ]]; then stat -c %s -- "$1"; else echo 0; fi
}

# launch PIDFILE LOGDIR FLAGS...: start one daemon and wait until it serves.
# On success sets LAUNCHED_PID and LAUNCHED_URL; on failure prints the logs,
# stops what it started, and returns 1.
launch() {
    local pf="$1" dir="$2"
    shift 2
    local out="$dir/stdout.log" offset log_offset pid url="" deadline seen_at=""
    mkdir -p "$dir"
    if [[ -s "$out" && -n "$(tail -c 1 "$out")" ]]; then echo >>"$out"; fi
    printf '==== %s start.sh: %s %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$bin" "$*" >>"$out"
    offset="$(file_size "$out")"
    log_offset="$(file_size "$dir/server.log")"

    # setsid: own session, no controlling terminal; the server is the child's
    # pid because a background child of a script is no process-group leader.
    ( exec setsid "$bin" "$@" </dev/null >>"$out" 2>&1 9>&- ) &
    pid=$!

    deadline="$(deadline_after "$wait_s")"
    while :; do
        if ! proc_alive "$pid"; then
            echo "$hearth_prog: hearth exited during startup (pid $pid)" >&2
            print_failure "$out" "$offset" "$dir" "$log_offset"
            remove_pid_file_if "$pf" "$pid"
            return 1
        fi
        # The server prints its URL once it listens (after writing its pid
        # file): its own word on the port, whatever -p said.
        if [[ -z "$url" ]]; then
            url="$(listen_url_from_log "$out" "$offset")" || url=""
            url="${url%/}"
        fi
        if [[ -n "$url" ]] && port_open "$(host_of_url "$url")" "$(port_of_url "$url")"; then
            if [[ "$(pid_read "$pf" 2>/dev/null)" == "$pid" ]]; then
                break
            fi
            # Listening but no pid file yet: give the server a moment, then
            # write it here so stop.sh can find it.
            if [[ -z "$seen_at" ]]; then
                seen_at="$(now_us)"
            elif (($(now_us) - seen_at >= 2000000)); then
                warn "the server wrote no pid file; writing $pf"
                printf '%s\n' "$pid" >"$pf"
                break
            fi
        fi
        if ! before "$deadline"; then
            echo "$hearth_prog: hearth did not answer${url:+ on $url} within ${wait_s}s; stopping it" >&2
            kill -TERM "$pid" 2>/dev/null || true
            wait_gone "$pid" 3 || kill -KILL "$pid" 2>/dev/null || true
            remove_pid_file_if "$pf" "$pid"
            print_failure "$out" "$offset" "$dir" "$log_offset"
            return 1
        fi
        sleep 0.1
    done
    LAUNCHED_PID="$pid"
    LAUNCHED_URL="$url"
    # One "listening on" line per --bind; the URL is its first word.
    LAUNCHED_URLS="$(tail -c "+$((offset + 1))" "$out" 2>/dev/null | sed -n 's/.*hearth listening on \([^ ]*\).*/\1/p')"
    return 0
}

save_args

if [[ $instances -eq 0 ]]; then
    if launch "$pid_file" "$log_dir" "${user_flags[@]}" "${added[@]}" --log-dir "$log_dir" --pid-file "$pid_file"; then
        info "hearth started: pid $LAUNCHED_PID, $LAUNCHED_URL/"
        while IFS= read -r u; do
            if [[ -n "$u" ]]; then info "  url:      $u"; fi
        done <<<"$LAUNCHED_URLS"
        info "  pid file: $pid_file"
        info "  logs:     $log_dir"
        exit 0
    fi
    exit 1
fi

# --instances N: N daemons on one port.
started=()
port=""
for ((i = 1; i <= instances; i++)); do
    pf="$(instance_pid_file "$pid_file" "$i")"
    dir="$log_dir/instance-$i"
    ok=0
    if launch "$pf" "$dir" "${user_flags[@]}" "${added[@]}" --log-dir "$dir" --pid-file "$pf"; then
        started+=("$pf")
        ok=1
        this="$(port_of_url "$LAUNCHED_URL")"
        if [[ -z "$port" ]]; then port="$this"; fi
        if [[ "$this" != "$port" ]]; then
            echo "$hearth_prog: instance $i listens on port $this, not $port: --instances needs a fixed port (-p PORT), not 0" >&2
            ok=0
        else
            info "hearth instance $i started: pid $LAUNCHED_PID, $LAUNCHED_URL/ (pid file $pf, logs $dir)"
        fi
    fi
    if [[ $ok -eq 0 ]]; then
        if [[ ${#started[@]} -gt 0 ]]; then
            echo "$hearth_prog: instance $i failed; stopping the ${#started[@]} started" >&2
            for pf in "${started[@]}"; do
                "$HEARTH_SRC/scripts/stop.sh" --pid-file "$pf" >&2 || true
            done
        fi
        exit 1
    fi
done
exit 0
