# shellcheck shell=bash
# Shared helpers for the hearth operations scripts (start.sh, stop.sh,
# status.sh, restart.sh).  Source it; do not run it.
#
# Environment:
#   HEARTH_HOME  project directory the scripts work from (default: the parent
#                of this scripts/ directory).  Relative paths given to the
#                scripts and to the server (html, logs, pid files) are
#                relative to it.
#   HEARTH_BIN   server binary to run; setting it also skips the automatic
#                `cargo build --release` (which otherwise runs in the source
#                tree holding this scripts/ directory, HEARTH_SRC).

# The source tree these scripts belong to (where cargo builds the binary).
HEARTH_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${HEARTH_HOME:-}" ]]; then
    HEARTH_HOME="$HEARTH_SRC"
fi
HEARTH_DEFAULT_PID_FILE="logs/server.pid"
HEARTH_DEFAULT_PORT=8888
HEARTH_DEFAULT_GRACE=10
HEARTH_DEFAULT_LOG_DIR="logs"

# ---------------------------------------------------------------- messages

hearth_prog="$(basename "$0")"

info() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$hearth_prog" "$*" >&2; }
die() { printf '%s: %s\n' "$hearth_prog" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- paths

# abs_path PATH: PATH made absolute against HEARTH_HOME (not resolved further).
abs_path() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$HEARTH_HOME/${1#./}" ;;
    esac
}

# pid_files_for PIDFILE: PIDFILE itself and the per-instance files that
# `start.sh --instances N` derives from it (server.pid -> server-1.pid, ...),
# one per line: those that exist, and all N expected ones.  PIDFILE is printed even when missing if no
# instance file exists, so callers can report on it.
pid_files_for() {
    local base="$1" stem f found=0 n=0 i first=""
    stem="${base%.pid}"
    if [[ -e "$base" ]]; then
        printf '%s\n' "$base"
        found=1
    fi
    # The instance count of the last start.sh, so that an instance which
    # died and took its pid file along is still reported.
    if [[ -r "$stem.args" ]]; then
        IFS= read -r -d '' first <"$stem.args" || true
        if [[ "$first" =~ ^instances=([0-9]+)$ ]]; then n="${BASH_REMATCH[1]}"; fi
    fi
    for ((i = 1; i <= n; i++)); do
        printf '%s\n' "$stem-$i.pid"
        found=1
    done
    for f in "$stem"-[0-9]*.pid; do
        [[ -e "$f" ]] || continue
        if [[ "$f" =~ -([0-9]+)\.pid$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= n)); then
            continue
        fi
        printf '%s\n' "$f"
        found=1
    done
    if [[ $found -eq 0 ]]; then
        printf '%s\n' "$base"
    fi
}

# collect_pid_files [PIDFILE]: the pid files stop.sh and status.sh look at,
# into the array PID_FILES: PIDFILE and its instance files when given, else
# the default pid file and every other server*.pid beside it.
collect_pid_files() {
    local f
    PID_FILES=()
    if [[ -n "${1:-}" ]]; then
        mapfile -t PID_FILES < <(pid_files_for "$(abs_path "$1")")
        return 0
    fi
    mapfile -t PID_FILES < <(pid_files_for "$(abs_path "$HEARTH_DEFAULT_PID_FILE")")
    for f in "$(dirname "$(abs_path "$HEARTH_DEFAULT_PID_FILE")")"/server*.pid; do
        [[ -e "$f" ]] || continue
        case " ${PID_FILES[*]} " in *" $f "*) ;; *) PID_FILES+=("$f") ;; esac
    done
}

# instance_pid_file PIDFILE N: the pid file of instance N.
instance_pid_file() {
    printf '%s-%s.pid\n' "${1%.pid}" "$2"
}

# ---------------------------------------------------------------- processes

# pid_read FILE: print the pid stored in FILE; fails if FILE is missing or
# holds no pid.
pid_read() {
    local pid=""
    [[ -r "$1" ]] || return 1
    read -r pid <"$1" 2>/dev/null || true
    [[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 1 ]] || return 1
    printf '%s\n' "$pid"
}

# proc_alive PID: the process exists and is not a zombie.  (A daemon whose
# parent never reaps it stays a zombie after exiting; that counts as gone.)
proc_alive() {
    local pid="$1" stat rest state
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
        rest="${stat##*) }"
        state="${rest%% *}"
        [[ "$state" != "Z" && "$state" != "X" ]] || return 1
    fi
    return 0
}

# proc_args PID: the process's command line into the array PROC_ARGS
# (argv[0] included).  Fails if it cannot be read.
proc_args() {
    PROC_ARGS=()
    [[ -r "/proc/$1/cmdline" ]] || return 1
    mapfile -d '' -t PROC_ARGS <"/proc/$1/cmdline" 2>/dev/null || return 1
    [[ ${#PROC_ARGS[@]} -gt 0 ]]
}

# pid_owns_file PID PIDFILE: PID was started with PIDFILE among its arguments
# (`--pid-file PIDFILE` or `--pid-file=PIDFILE`; guards against a recycled pid).
# Where /proc cannot tell, assume it is.
pid_owns_file() {
    local pid="$1" want a cwd
    want="$(realpath -m "$2")"
    proc_args "$pid" || return 0
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 0
    for a in "${PROC_ARGS[@]:1}"; do
        a="${a#--pid-file=}"
        [[ "$a" == /* ]] || a="$cwd/${a#./}"
        [[ "$(realpath -m "$a")" == "$want" ]] && return 0
    done
    return 1
}

# running_pid PIDFILE: print the pid of the live server behind PIDFILE.
# Fails when there is none (missing file, dead process, or a recycled pid).
running_pid() {
    local pid
    pid="$(pid_read "$1")" || return 1
    proc_alive "$pid" || return 1
    pid_owns_file "$pid" "$1" || return 1
    printf '%s\n' "$pid"
}

# remove_pid_file_if PIDFILE PID: remove PIDFILE if it still names PID.
remove_pid_file_if() {
    local cur
    cur="$(pid_read "$1" 2>/dev/null)" || cur=""
    if [[ -e "$1" && ( -z "$cur" || "$cur" == "$2" ) ]]; then
        rm -f -- "$1"
    fi
}

# now_us: a clock in microseconds (bash 5's EPOCHREALTIME; whole seconds
# before that), for deadlines finer than $SECONDS.
now_us() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        printf '%s\n' "${EPOCHREALTIME//[!0-9]/}"
    else
        printf '%s\n' "$(($(date +%s) * 1000000))"
    fi
}

# deadline_after SECONDS: the now_us value SECONDS from now.
deadline_after() {
    printf '%s\n' $(($(now_us) + $1 * 1000000))
}

# before DEADLINE: true while now_us is before DEADLINE.
before() {
    (($(now_us) < $1))
}

# wait_gone PID SECONDS: wait until PID is gone; fails on timeout.
wait_gone() {
    local pid="$1" deadline
    deadline="$(deadline_after "$2")"
    while proc_alive "$pid"; do
        before "$deadline" || return 1
        sleep 0.1
    done
}

# proc_uptime PID: seconds since PID started.
proc_uptime() {
    local pid="$1" stat rest start hz up f
    if [[ -r "/proc/$pid/stat" && -r /proc/uptime ]]; then
        stat="$(cat "/proc/$pid/stat")" || return 1
        rest="${stat##*) }"
        # Field 22 (starttime) is the 20th after "comm)": state is field 3.
        read -r -a f <<<"$rest"
        start="${f[19]}"
        hz="$(getconf CLK_TCK 2>/dev/null || echo 100)"
        read -r up _ </proc/uptime
        up="${up%%.*}"
        printf '%s\n' $((up - start / hz))
    else
        ps -o etimes= -p "$pid" | tr -d ' '
    fi
}

# human_duration SECONDS
human_duration() {
    local s="$1" d h m
    d=$((s / 86400)); h=$((s % 86400 / 3600)); m=$((s % 3600 / 60)); s=$((s % 60))
    if ((d > 0)); then
        printf '%dd %02dh %02dm %02ds\n' "$d" "$h" "$m" "$s"
    elif ((h > 0)); then
        printf '%dh %02dm %02ds\n' "$h" "$m" "$s"
    elif ((m > 0)); then
        printf '%dm %02ds\n' "$m" "$s"
    else
        printf '%ds\n' "$s"
    fi
}

# ---------------------------------------------------------------- the server's own word

# given_to_server BIN FLAG VALUE ARGS...: ARGS already set FLAG (VALUE is a
# placeholder for a flag that takes one, empty for a switch).  Asked of the
# server's own parser: it refuses a flag given twice, so ARGS with FLAG added
# are refused while ARGS alone are not.
given_to_server() {
    local bin="$1" flag="$2" value="$3"
    shift 3
    local again=("$flag")
    if [[ -n "$value" ]]; then again+=("$value"); fi
    if "$bin" "$@" "${again[@]}" --version >/dev/null 2>&1; then return 1; fi
    "$bin" "$@" --version >/dev/null 2>&1
}

# server_stdout PID: the file the server's stdout goes to (start.sh points it
# at LOG_DIR/stdout.log).  Fails when /proc cannot tell or it is no file.
server_stdout() {
    local f
    f="$(readlink "/proc/$1/fd/1" 2>/dev/null)" || return 1
    [[ -f "$f" ]] || return 1
    printf '%s\n' "$f"
}

# server_setting FILE KEY [SKIP_BYTES]: KEY's value on the last
# "hearth settings: grace=.. health=.. stats=.." line the server printed to
# FILE (after SKIP_BYTES bytes).  Fails when there is no such line.
server_setting() {
    local file="$1" key="$2" skip="${3:-0}" line w
    [[ -r "$file" ]] || return 1
    line="$(tail -c "+$((skip + 1))" "$file" 2>/dev/null | grep -a '^hearth settings: ' | tail -n 1)" || return 1
    [[ -n "$line" ]] || return 1
    for w in ${line#hearth settings: }; do
        if [[ "$w" == "$key="* ]]; then
            printf '%s\n' "${w#*=}"
            return 0
        fi
    done
    return 1
}

# find_bin: the server binary into BIN: HEARTH_BIN when set, else
# target/release/hearth of HEARTH_SRC, built first (cargo build --release)
# when missing or older than src/ or Cargo.toml.
find_bin() {
    if [[ -n "${HEARTH_BIN:-}" ]]; then
        BIN="$(command -v "$HEARTH_BIN" 2>/dev/null || abs_path "$HEARTH_BIN")"
        [[ -x "$BIN" && -f "$BIN" ]] || die "HEARTH_BIN=$HEARTH_BIN is not an executable file"
        return 0
    fi
    local target_dir="${CARGO_TARGET_DIR:-$HEARTH_SRC/target}"
    [[ "$target_dir" == /* ]] || target_dir="$HEARTH_SRC/$target_dir"
    BIN="$target_dir/release/hearth"
    if [[ ! -x "$BIN" || -n "$(find "$HEARTH_SRC/src" "$HEARTH_SRC/Cargo.toml" -newer "$BIN" -print -quit 2>/dev/null)" ]]; then
        command -v cargo >/dev/null 2>&1 || die "$BIN is missing or out of date, and cargo is not installed"
        info "building hearth (cargo build --release in $HEARTH_SRC)..." >&2
        (cd "$HEARTH_SRC" && cargo build --release) >&2 || die "build failed; nothing was started or stopped"
        [[ -x "$BIN" ]] || die "build produced no $BIN"
    fi
}

# wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds; fails
# when it has not within SECONDS.
wait_until() {
    local deadline
    deadline="$(deadline_after "$1")"
    shift
    until "$@"; do
        before "$deadline" || return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------- network

# connect_host BIND: the address to reach a server bound to BIND from here.
connect_host() {
    case "$1" in
        0.0.0.0|"") printf '127.0.0.1\n' ;;
        ::|"[::]") printf '::1\n' ;;
        \[*\]) local h="${1#[}"; printf '%s\n' "${h%]}" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# url_host HOST: HOST as written in a URL (IPv6 in brackets).
url_host() {
    case "$1" in
        *:*) printf '[%s]\n' "$1" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# port_open HOST PORT: a TCP connection to HOST:PORT succeeds (1 s bound).
port_open() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_port HOST PORT SECONDS [PID]: wait until HOST:PORT accepts; gives up
# at the deadline, or as soon as PID (when given) is gone.
wait_port() {
    local host="$1" port="$2" pid="${4:-}" deadline
    deadline="$(deadline_after "$3")"
    while ! port_open "$host" "$port"; do
        if [[ -n "$pid" ]] && ! proc_alive "$pid"; then return 1; fi
        before "$deadline" || return 1
        sleep 0.1
    done
}

# http_get HOST PORT PATH: print the response body; fails unless the status
# is 2xx.  Uses curl when present, bash /dev/tcp otherwise.  Bounded to 3 s.
http_get() {
    local host="$1" port="$2" path="$3"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 3 "http://$(url_host "$host"):$port$path"
    else
        # shellcheck disable=SC2016  # expanded by the inner bash
        timeout 3 bash -c '
            exec 3<>"/dev/tcp/$1/$2" || exit 1
            printf "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
            IFS= read -r status <&3 || exit 1
            case "$status" in "HTTP/1."?" 2"*) ;; *) exit 1 ;; esac
            while IFS= read -r line <&3; do [[ "$line" == $'"'"'\r'"'"' || -z "$line" ]] && break; done
            cat <&3
        ' _ "$host" "$port" "$path"
    fi
}

# listen_url_from_log FILE [SKIP_BYTES]: the URL from the last
# "hearth listening on http://..." line in FILE (after SKIP_BYTES bytes); the
# https:// lines (with --tls-cert) are not plain HTTP, which the scripts speak.
listen_url_from_log() {
    local file="$1" skip="${2:-0}" line
    [[ -r "$file" ]] || return 1
    line="$(tail -c "+$((skip + 1))" "$file" 2>/dev/null | grep -a 'hearth listening on http://' | tail -n 1)" || return 1
    [[ -n "$line" ]] || return 1
    line="${line##*hearth listening on }"
    printf '%s\n' "${line%%[[:space:]]*}"
}

# host_of_url URL: the host of http://HOST:PORT[/...], IPv6 without brackets.
host_of_url() {
    local u="${1#*://}"
    u="${u%%/*}"
    u="${u%:*}"
    u="${u#[}"
    printf '%s\n' "${u%]}"
}

# port_of_url URL: the port number of http://HOST:PORT[/...]
port_of_url() {
    local u="${1#*://}"
    u="${u%%/*}"
    printf '%s\n' "${u##*:}"
}
