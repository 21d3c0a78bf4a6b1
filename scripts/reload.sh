#!/usr/bin/env bash
# Reload hearth's configuration (SIGHUP) and report whether it took.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [--pid-file FILE] [--timeout SECONDS]

Send SIGHUP to the running hearth (it reopens its logs and reads its --config
file again) and wait for the outcome on its statistics page: the
config_generation counter grows when the new configuration took, and
config_reloads_failed when it did not, with the server's reason in
config_reload_error.  Test a file before with: hearth --config FILE --check

Options:
  --pid-file FILE   the server (and its start.sh --instances) named by FILE
                    (default: every $HEARTH_DEFAULT_PID_FILE / logs/server*.pid)
  --timeout S       seconds to wait for the outcome (default 10)
  -h, --help        this help

Exit status: 0 the new configuration took (on every instance); 1 it did not:
the server's error is printed and the running configuration stays; 2 the
outcome could not be learnt (no server running, no --stats-path, no answer).
EOF
}

timeout_s=10
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
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout: not a number of seconds: $timeout_s"

cd "$HEARTH_HOME"

# stats_line TEXT KEY: KEY's value on the plain-text statistics page TEXT.
stats_line() {
    local line
    line="$(grep -a "^$2: " <<<"$1" | tail -n 1)" || return 1
    printf '%s\n' "${line#"$2: "}"
}

# reload_one PID: SIGHUP to PID, then wait for its verdict; returns the exit
# status this script gives for it.
reload_one() {
    local pid="$1" out url stats host port page gen0 fail0 gen fail err deadline
    if ! out="$(server_stdout "$pid")" || ! url="$(listen_url_from_log "$out")"; then
        warn "pid $pid: cannot find its address (no stdout.log); SIGHUP sent, outcome unknown: see server.log"
        kill -HUP "$pid"
        return 2
    fi
    stats="$(server_setting "$out" stats 2>/dev/null)" || stats=""
    host="$(host_of_url "$url")"
    port="$(port_of_url "$url")"
    if [[ -z "$stats" ]] || ! page="$(http_get "$host" "$port" "$stats" 2>/dev/null)" ||
        ! gen0="$(stats_line "$page" config_generation)"; then
        warn "pid $pid has no readable statistics page (--stats-path); SIGHUP sent, outcome unknown: see server.log"
        kill -HUP "$pid"
        return 2
    fi
    fail0="$(stats_line "$page" config_reloads_failed)" || fail0=0
    kill -HUP "$pid"
    deadline="$(deadline_after "$timeout_s")"
    while before "$deadline"; do
        sleep 0.1
        page="$(http_get "$host" "$port" "$stats" 2>/dev/null)" || continue
        gen="$(stats_line "$page" config_generation)" || continue
        fail="$(stats_line "$page" config_reloads_failed)" || fail=0
        if ((gen > gen0)); then
            info "hearth (pid $pid) reloaded: configuration generation $gen"
            return 0
        fi
        if ((fail > fail0)); then
            err="$(stats_line "$page" config_reload_error)" || err="(no reason given; see server.log)"
            printf '%s: hearth (pid %s) kept its running configuration: %s\n' "$hearth_prog" "$pid" "$err" >&2
            return 1
        fi
    done
    warn "pid $pid: no outcome within ${timeout_s}s"
    return 2
}

collect_pid_files "$opt_pid_file"
rc=0
any=0
for f in "${PID_FILES[@]}"; do
    pid="$(running_pid "$f")" || continue
    any=1
    one=0
    reload_one "$pid" || one=$?
    if ((one > rc)); then rc=$one; fi
done
if ((any == 0)); then
    printf '%s: hearth is not running\n' "$hearth_prog" >&2
    exit 2
fi
exit "$rc"
