#!/usr/bin/env bash
# Report whether hearth runs, since when, where, and its live statistics.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: $hearth_prog [--pid-file FILE] [-q|--quiet]

Show whether hearth is running: pid, uptime, listening port, health check,
and the live statistics page when the server was started with --stats-path
(fetched from the loopback address, which is always allowed to read it).

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
    local pid="$1" pf="$2" up cwd dir port url host out health stats
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
    parse_server_flags "${PROC_ARGS[@]:1}"
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || cwd="$HEARTH_HOME"
    dir="$SRV_LOG_DIR"
    [[ "$dir" == /* ]] || dir="$cwd/${dir#./}"
    port="$SRV_PORT"
    url=""
    if url="$(listen_url_from_log "$dir/stdout.log")"; then
        # The server's own "listening on" line knows the real port (-p 0).
        # A --config file may set the port, which the flags above do not show.
        if [[ "$port" == 0 || " ${PROC_ARGS[*]} " == *" --config "* ]]; then port="$(port_of_url "$url")"; fi
    else
        url="http://$(url_host "$SRV_BIND"):$port"
    fi
    say "  listening:  $url (port $port)"
    # Every bind of the last start ("==== ... start.sh" begins one in stdout.log).
    while IFS= read -r u; do
        if [[ -n "$u" && "${u%/}" != "${url%/}" ]]; then say "  also:       $u"; fi
    done < <(awk '/^==== /{n=""} /hearth listening on /{sub(/.*hearth listening on /,""); n=n $0 "\n"} END{printf "%s", n}' "$dir/stdout.log" 2>/dev/null)
    say "  log dir:    $dir"
    host="$(connect_host "$SRV_BIND")"
    if [[ $SRV_REUSEPORT -eq 1 ]]; then
        say "  (--reuseport: the port is shared, so health and stats below come"
        say "   from whichever instance accepts the connection)"
    fi
    if [[ "$port" == 0 ]]; then
        say "  (port 0 and no 'listening on' line in $dir/stdout.log: cannot query it)"
        return 0
    fi
    if [[ -n "$SRV_HEALTH_PATH" ]]; then
        if health="$(http_get "$host" "$port" "$SRV_HEALTH_PATH" 2>/dev/null)"; then
            say "  health:     ${health:-ok} (GET $SRV_HEALTH_PATH)"
        else
            say "  health:     FAILING (GET http://$(url_host "$host"):$port$SRV_HEALTH_PATH)"
        fi
    fi
    if [[ -n "$SRV_STATS_PATH" ]]; then
        if stats="$(http_get "$host" "$port" "$SRV_STATS_PATH" 2>/dev/null)"; then
            say "  stats:      http://$(url_host "$host"):$port$SRV_STATS_PATH"
            while IFS= read -r out; do
                say "    ${out%$'\r'}"
            done <<<"$stats"
        else
            say "  stats:      unavailable (GET http://$(url_host "$host"):$port$SRV_STATS_PATH failed)"
        fi
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
