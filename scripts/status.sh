#!/usr/bin/env bash
# Report whether hearth runs, since when, where, and its live statistics.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [--pid-file FILE] [-q|--quiet]

Show whether hearth is running: pid, uptime, its URL, health check, and the
live counters of its statistics page (start.sh serves them at /_stats unless
told another --stats-path; fetched from loopback, which may always read them).

Options:
  --pid-file FILE   the server named in FILE and its instances FILE-N.pid
                    (default: $HEARTH_DEFAULT_PID_FILE and every logs/server*.pid)
  -q, --quiet       print nothing; only the exit status
  -h, --help        this help

Exit status: 0 running (every instance); 1 some instances are down;
3 not running.
EOF
}

quiet=0
opt_pid_file=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -q|--quiet) quiet=1; shift ;;
        --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; opt_pid_file="$2"; shift 2 ;;
        --pid-file=*) opt_pid_file="${1#*=}"; shift ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

cd "$HEARTH_HOME"
collect_pid_files "$opt_pid_file"

say() { if [[ $quiet -eq 0 ]]; then printf '%s\n' "$*"; fi; }

# report PID PIDFILE: the details of one running server.
report() {
    local pid="$1" pf="$2" up port url="" host out="" health stats body line
    say "hearth is running (pid $pid)"
    [[ $quiet -eq 0 ]] || return 0
    say "  pid file:   $pf"
    if up="$(proc_uptime "$pid" 2>/dev/null)" && [[ -n "$up" ]]; then
        say "  uptime:     $(human_duration "$up") ($up s)"
    fi
    if ! proc_args "$pid"; then
        say "  (cannot read /proc/$pid/cmdline: no port or statistics)"
        return 0
    fi
    say "  binary:     ${PROC_ARGS[0]}"
    # The server's own stdout (LOG_DIR/stdout.log under start.sh) says where it
    # listens and which paths it serves.
    if ! out="$(server_stdout "$pid")" || ! url="$(listen_url_from_log "$out")"; then
        say "  (no 'hearth listening on' line in its stdout${out:+ $out}: cannot query it)"
        return 0
    fi
    url="${url%/}"
    host="$(host_of_url "$url")"
    port="$(port_of_url "$url")"
    say "  listening:  $url/ (port $port)"
    # One "listening on" line per --bind: name the others too.
    while IFS= read -r u; do
        if [[ -n "$u" && "${u%/}" != "$url" ]]; then say "  also:       $u"; fi
    done < <(awk '/^==== /{n=""} /hearth listening on /{sub(/.*hearth listening on /,""); sub(/ .*/,""); n=n $0 "\n"} END{printf "%s", n}' "$out" 2>/dev/null)
    say "  log dir:    $(dirname "$out")"
    case " ${PROC_ARGS[*]} " in
        *" --reuseport "*)
            say "  (--reuseport: the port is shared, so health and stats below come"
            say "   from whichever instance accepts the connection)"
            ;;
    esac
    health="$(server_setting "$out" health)" || health=""
    stats="$(server_setting "$out" stats)" || stats=""
    if [[ -n "$health" ]]; then
        if body="$(http_get "$host" "$port" "$health" 2>/dev/null)"; then
            say "  health:     ${body:-ok} (GET $health)"
        else
            say "  health:     FAILING (GET $url$health)"
        fi
    fi
    if [[ -z "$stats" ]]; then
        say "  stats:      off (start it with --stats-path PATH to see live counters)"
    elif body="$(http_get "$host" "$port" "$stats" 2>/dev/null)"; then
        say "  stats:      $url$stats"
        while IFS= read -r line; do
            say "    ${line%$'\r'}"
        done <<<"$body"
    else
        say "  stats:      unavailable (GET $url$stats failed)"
    fi
}

running=0
down=0
for f in "${PID_FILES[@]}"; do
    if pid="$(running_pid "$f")"; then
        running=$((running + 1))
        report "$pid" "$f"
    elif [[ -e "$f" ]]; then
        down=$((down + 1))
        say "hearth is not running (stale pid file $f names pid $(pid_read "$f" 2>/dev/null || echo '?'), which is gone)"
    else
        down=$((down + 1))
        say "hearth is not running (no pid file $f)"
    fi
done

if [[ $running -eq 0 ]]; then exit 3; fi
if [[ $down -gt 0 ]]; then exit 1; fi
exit 0
