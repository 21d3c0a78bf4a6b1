#!/usr/bin/env bash
# Stop hearth gracefully: SIGTERM, wait, SIGKILL only as a last resort.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [--pid-file FILE] [--timeout SECONDS]

Stop the hearth server(s) started by start.sh.  Sends SIGTERM (the server
stops accepting, closes idle connections and lets in-flight responses finish
within its --grace), waits, and only if the process is still there after the
timeout sends SIGKILL.  Removes the pid file.

Options:
  --pid-file FILE   stop the server named in FILE, and the instances
                    FILE-1.pid, FILE-2.pid ... (start.sh --instances)
                    (default: every $HEARTH_DEFAULT_PID_FILE / logs/server*.pid)
  --timeout S       seconds to wait after SIGTERM before SIGKILL
                    (default: the server's --grace + 5; $((HEARTH_DEFAULT_GRACE + 5)) when not given)
  -h, --help        this help

Exit status: 0 stopped, or was not running; 1 the process could not be killed.
EOF
}

timeout_s=""
opt_pid_file=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout_s="$2"; shift 2 ;;
        --timeout=*) timeout_s="${1#*=}"; shift ;;
        --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; opt_pid_file="$2"; shift 2 ;;
        --pid-file=*) opt_pid_file="${1#*=}"; shift ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done
if [[ -n "$timeout_s" && ! "$timeout_s" =~ ^[0-9]+$ ]]; then
    die "--timeout: not a number of seconds: $timeout_s"
fi

cd "$HEARTH_HOME"

collect_pid_files "$opt_pid_file"
files=("${PID_FILES[@]}")

pids=()
pid_of=()
wait_for=0
for f in "${files[@]}"; do
    if pid="$(running_pid "$f")"; then
        pids+=("$pid")
        pid_of+=("$f")
        # Default wait: the --grace the server reported on its stdout.
        if ! out="$(server_stdout "$pid")" || ! g="$(server_setting "$out" grace)" ||
            [[ ! "$g" =~ ^[0-9]+$ ]]; then
            g="$HEARTH_DEFAULT_GRACE"
        fi
        if ((g + 5 > wait_for)); then wait_for=$((g + 5)); fi
    elif [[ -e "$f" ]]; then
        info "hearth is not running (pid $(pid_read "$f" 2>/dev/null || echo '?') is gone); removing stale pid file $f"
        rm -f -- "$f"
    fi
done

if [[ ${#pids[@]} -eq 0 ]]; then
    if [[ ${#files[@]} -le 1 ]]; then
        info "hearth is not running (no live process for ${files[0]:-$HEARTH_DEFAULT_PID_FILE})"
    else
        info "hearth is not running"
    fi
    exit 0
fi

if [[ -n "$timeout_s" ]]; then wait_for="$timeout_s"; fi
started="$(now_us)"

for i in "${!pids[@]}"; do
    info "stopping hearth (pid ${pids[$i]}, pid file ${pid_of[$i]}); waiting up to ${wait_for}s"
    kill -TERM "${pids[$i]}" 2>/dev/null || true
done

rc=0
deadline="$(deadline_after "$wait_for")"
for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    # One deadline for all: the instances were signalled together.
    while proc_alive "$pid" && before "$deadline"; do
        sleep 0.1
    done
    if ! proc_alive "$pid"; then
        info "hearth stopped (pid $pid, after $(( ($(now_us) - started) / 1000 )) ms)"
    else
        warn "pid $pid still running ${wait_for}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        if wait_gone "$pid" 5; then
            info "hearth killed (pid $pid)"
        else
            warn "pid $pid survived SIGKILL"
            rc=1
            continue
        fi
    fi
    remove_pid_file_if "${pid_of[$i]}" "$pid"
done
exit "$rc"
