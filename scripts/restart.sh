#!/usr/bin/env bash
# Restart hearth without refusing a connection: SIGUSR2 makes the server start a
# new process on its own listening sockets; once the new one answers, the old one
# is stopped gracefully.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [--pid-file FILE] [--timeout SECONDS]
       $hearth_prog [START OPTIONS] SERVER FLAGS...

Without server flags: restart the running hearth with nothing refused.  The
binary is rebuilt first when src/ changed (a failed build leaves the old
server running).  Then, for the server of the pid file (and each of its
start.sh --instances, one after the other):

  1. SIGUSR2: the server starts a new process of the binary (the file now at
     its path, so a rebuilt binary takes over) with the same flags, handing
     it the listening sockets; both accept from the same sockets;
  2. wait until the pid file names the new process, it has printed its
     "listening" line, and the health path answers;
  3. SIGTERM to the old process: it stops accepting and finishes its
     responses (--grace); connections waiting to be accepted stay queued
     on the sockets the new process holds, so none is refused.

If the new process fails to start, the old one keeps serving and this script
exits 1 with the new process's output.

With server flags (new flags): stop, then start with them (start.sh
--restart); connections arriving in between are refused.  When no server is
running, it is started (start.sh).

Options:
  --pid-file FILE   the server to restart (default: $HEARTH_DEFAULT_PID_FILE)
  --timeout S       seconds for the new process to answer (default 30)
  -h, --help        this help
EOF
}

opt_pid_file=""
timeout_s=30
rest=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; opt_pid_file="$2"; shift 2 ;;
        --pid-file=*) opt_pid_file="${1#*=}"; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout_s="$2"; shift 2 ;;
        --timeout=*) timeout_s="${1#*=}"; shift ;;
        *) rest+=("$1"); shift ;;
    esac
done
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout: not a number of seconds: $timeout_s"
start_sh="$HEARTH_SRC/scripts/start.sh"
pid_args=()
if [[ -n "$opt_pid_file" ]]; then pid_args=(--pid-file "$opt_pid_file"); fi

if [[ ${#rest[@]} -gt 0 ]]; then
    info "new flags given: stopping, then starting (connections arriving meanwhile are refused)"
    exec "$start_sh" --restart "${pid_args[@]}" "${rest[@]}"
fi

cd "$HEARTH_HOME"
pid_file="$(abs_path "${opt_pid_file:-$HEARTH_DEFAULT_PID_FILE}")"

running=()
while IFS= read -r f; do
    if pid="$(running_pid "$f")"; then running+=("$f"); fi
done < <(pid_files_for "$pid_file")
if [[ ${#running[@]} -eq 0 ]]; then
    info "hearth is not running; starting it"
    exec "$start_sh" --restart "${pid_args[@]}"
fi

# Rebuild before anything is signalled.
find_bin

file_size() {
    if [[ -e "$1" ]]; then stat -c %s -- "$1"; else echo 0; fi
}

# handover PIDFILE OLD: steps 1 to 3 for one server; returns 1 when the new
# process did not take over (the old one then still serves).
handover() {
    local pf="$1" old="$2" out offset url host port health new="" deadline grace stop_wait
    out="$(server_stdout "$old")" || die "pid $old: its stdout is no file (not started by start.sh?); use start.sh --restart"
    url="$(listen_url_from_log "$out")" || die "pid $old: no \"listening\" line in $out"
    host="$(host_of_url "$url")"
    port="$(port_of_url "$url")"
    health="$(server_setting "$out" health 2>/dev/null)" || health=""
    grace="$(server_setting "$out" grace 2>/dev/null)" || grace="$HEARTH_DEFAULT_GRACE"
    [[ "$grace" =~ ^[0-9]+$ ]] || grace="$HEARTH_DEFAULT_GRACE"
    offset="$(file_size "$out")"

    kill -USR2 "$old"
    deadline="$(deadline_after "$timeout_s")"
    # The new process writes the pid file once it holds the sockets, then prints
    # its "listening" line; the health path may be answered by either.
    while :; do
        proc_alive "$old" || die "pid $old exited during the restart"
        new="$(pid_read "$pf" 2>/dev/null)" || new=""
        if [[ -n "$new" && "$new" != "$old" ]] && proc_alive "$new" &&
            tail -c "+$((offset + 1))" "$out" 2>/dev/null | grep -aq 'hearth listening on ' &&
            { [[ -z "$health" ]] || http_get "$host" "$port" "$health" >/dev/null 2>&1; }; then
            break
        fi
        if ! before "$deadline"; then
            {
                echo "$hearth_prog: the new process did not take over within ${timeout_s}s; pid $old keeps serving"
                echo "---- what it printed ($out):"
                tail -c "+$((offset + 1))" "$out" 2>/dev/null | tail -n 20 || true
            } >&2
            return 1
        fi
        sleep 0.1
    done
    kill -TERM "$old" 2>/dev/null || true
    stop_wait=$((grace + 5))
    if ! wait_gone "$old" "$stop_wait"; then
        warn "pid $old still running ${stop_wait}s after SIGTERM; sending SIGKILL"
        kill -KILL "$old" 2>/dev/null || true
        wait_gone "$old" 5 || true
    fi
    info "hearth restarted: pid $old -> $new (${url%/}/, pid file $pf)"
}

rc=0
for f in "${running[@]}"; do
    pid="$(running_pid "$f")" || continue
    handover "$f" "$pid" || rc=1
done
exit "$rc"
