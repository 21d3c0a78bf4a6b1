#!/usr/bin/env bash
# cluster-test.sh - fail-over test: HAProxy + 3 hearth instances under load.
#
#   1. starts HAProxy and 3 instances with scripts/cluster.sh (own directory and ports)
#   2. runs ab through HAProxy; mid-load, SIGKILLs instance h2, waits until
#      HAProxy marks it DOWN, restarts it and waits until it is UP again
#   3. runs ab again; mid-load, and while a slow 48 MiB download from h3 is in
#      flight, stops instance h3 gracefully (SIGTERM), checks the download
#      completes intact, waits until h3 exits and HAProxy marks it DOWN,
#      restarts it, waits for UP
#   4. asserts: ab saw zero failed and zero non-2xx responses in both runs,
#      the in-flight download survived SIGTERM,
#      h2 and h3 each went DOWN and came back UP (HAProxy stats CSV),
#      HAProxy answered no 5xx, every instance served traffic
#
# Prints requests sent, failed, and HAProxy's stats lines. Exits non-zero on
# any failure. Every wait has a deadline; a watchdog ends the run after
# CLUSTER_TEST_LIMIT seconds (default 115).
#
# Needs: bash, curl, ab (apache2-utils), haproxy; python3 or socat for the
# stats socket (falls back to the HTTP CSV page).
#
# Environment:
#   HEARTH_BIN           binary under test (default target/release/hearth, built if missing)
#   CLUSTER_TEST_DIR     working directory, wiped first (default logs/cluster-test)
#   CLUSTER_TEST_PORT    HAProxy port (default: 18080, or the next free one of
#                        19080, 20080, ...); instances use PORT+1..PORT+3,
#                        the stats page PORT+324
#   CLUSTER_TEST_LOAD1   seconds of load around the SIGKILL (default 12)
#   CLUSTER_TEST_LOAD2   seconds of load around the SIGTERM (default 10)
#   CLUSTER_TEST_CONC    ab concurrency (default 20)
#   CLUSTER_TEST_LIMIT   overall deadline in seconds (default 115)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="$REPO_ROOT/scripts/cluster.sh"
PROG="$(basename "$0")"

case "${1:-}" in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "$PROG: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

DIR="${CLUSTER_TEST_DIR:-$REPO_ROOT/logs/cluster-test}"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() {
    local p
    for p in "$1" $(($1 + 1)) $(($1 + 2)) $(($1 + 3)) $(($1 + 324)); do
        port_busy "$p" && return 1
    done
    return 0
}
if [[ -n "${CLUSTER_TEST_PORT:-}" ]]; then
    PORT="$CLUSTER_TEST_PORT"
else
    # Default 18080; on a shared machine move on to the first free block.
    PORT=""
    for candidate in 18080 19080 20080 21080 22080 23080 24080 25080; do
        if ports_free "$candidate"; then PORT=$candidate; break; fi
    done
    [[ -n "$PORT" ]] || { echo "$PROG: no free port block found; set CLUSTER_TEST_PORT" >&2; exit 1; }
fi
BASE_PORT=$((PORT + 1))
STATS_PORT=$((PORT + 324))
LOAD1="${CLUSTER_TEST_LOAD1:-12}"
LOAD2="${CLUSTER_TEST_LOAD2:-10}"
CONC="${CLUSTER_TEST_CONC:-20}"
LIMIT="${CLUSTER_TEST_LIMIT:-115}"
GRACE=5
INSTANCES=3
URL="http://127.0.0.1:$PORT/index.html"

FAILURES=()
TOTAL_SENT=0
TOTAL_FAILED=0
AB_PID=""
WATCHDOG_PID=""

say() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }
fail() { say "FAIL: $*"; FAILURES+=("$*"); }
fatal() { fail "$*"; exit 1; }

cluster() { "$CLUSTER" "$@" --dir "$DIR"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$AB_PID" ]] && kill "$AB_PID" 2>/dev/null || true
    [[ -n "$WATCHDOG_PID" ]] && kill "$WATCHDOG_PID" 2>/dev/null || true
    if [[ -f "$DIR/cluster.env" ]]; then
        say "stopping the cluster"
        cluster down --timeout 5 >/dev/null 2>&1 || say "warning: cluster down reported a problem"
    fi
    if ((rc != 0)) || ((${#FAILURES[@]})); then
        echo
        echo "cluster-test: FAILED (${#FAILURES[@]} failure(s))"
        local f
        for f in "${FAILURES[@]+"${FAILURES[@]}"}"; do echo "  - $f"; done
        echo "  logs: $DIR"
        ((rc != 0)) || rc=1
    else
        echo
        echo "cluster-test: PASSED"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted or over the ${LIMIT}s deadline"; exit 1' INT TERM

# ---------------------------------------------------------------- checks
for tool in curl ab haproxy awk; do
    command -v "$tool" >/dev/null 2>&1 || [[ "$tool" == haproxy && -x /usr/sbin/haproxy ]] ||
        fatal "$tool not found (apt-get install -y curl apache2-utils haproxy)"
done
command -v haproxy >/dev/null 2>&1 || export HAPROXY_BIN=/usr/sbin/haproxy

# Watchdog: the whole run is bounded.
# Its output goes to /dev/null so that no leftover process holds a caller's
# pipe open; the TERM trap above reports the overrun.
(
    exec >/dev/null 2>&1
    sleep "$LIMIT" &
    sleeper=$!
    trap 'kill "$sleeper"; exit 0' TERM
    wait "$sleeper" && kill -TERM $$
) &
WATCHDOG_PID=$!

# ---------------------------------------------------------------- helpers
# Status column of server $1 in HAProxy's stats CSV (UP, DOWN, "DOWN 1/2", ...).
srv_field() {
    local srv="$1" field="$2"
    cluster stat-csv 2>/dev/null | awk -F, -v s="$srv" -v f="$field" '
        NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == "be_hearth" && $2 == s { print $(col[f]) }'
}

# wait_status SRV REGEX SECONDS: poll HAProxy until SRV's status matches.
wait_status() {
    local srv="$1" re="$2" secs="$3" st=""
    local end=$((SECONDS + secs))
    while ((SECONDS < end)); do
        st="$(srv_field "$srv" status)"
        if [[ "$st" =~ $re ]]; then
            say "HAProxy reports $srv $st"
            return 0
        fi
        sleep 0.1
    done
    fail "$srv did not reach '$re' in HAProxy within ${secs}s (last status: ${st:-?})"
    return 1
}

inst_pid() { tr -dc '0-9' <"$DIR/h$1/hearth.pid" 2>/dev/null || true; }

# Running and not a zombie waiting for init to reap it.
running() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# start_load NAME SECONDS: ab through HAProxy in the background. No -k: a new
# client connection per request. -r: count socket errors instead of aborting.
start_load() {
    local name="$1" secs="$2"
    timeout $((secs + 20)) ab -r -c "$CONC" -t "$secs" -n 10000000 "$URL" \
        >"$DIR/ab-$name.txt" 2>&1 &
    AB_PID=$!
    say "load '$name' started: ab -r -c $CONC -t $secs $URL"
}

load_running() { [[ -n "$AB_PID" ]] && kill -0 "$AB_PID" 2>/dev/null; }

# finish_load NAME: wait for ab, then check and add up its numbers.
finish_load() {
    local name="$1" out="$DIR/ab-$1.txt" rc=0
    wait "$AB_PID" || rc=$?
    AB_PID=""
    local complete failed non2xx write_err
    complete="$(awk -F: '/^Complete requests/ {gsub(/ /, "", $2); print $2}' "$out")"
    failed="$(awk -F: '/^Failed requests/ {gsub(/ /, "", $2); print $2}' "$out")"
    non2xx="$(awk -F: '/^Non-2xx responses/ {gsub(/ /, "", $2); print $2}' "$out")"
    write_err="$(awk -F: '/^Write errors/ {gsub(/ /, "", $2); print $2}' "$out")"
    complete="${complete:-0}" failed="${failed:-0}" non2xx="${non2xx:-0}" write_err="${write_err:-0}"
    # ab counts a non-2xx answer whose length differs from the first
    # response under "Failed requests" as well, so take the larger of the
    # two rather than their sum; write errors are counted apart.
    local bad=$(( (failed > non2xx ? failed : non2xx) + write_err ))
    say "load '$name' done: ab exit $rc, complete $complete, failed $failed, non-2xx $non2xx, write errors $write_err"
    grep -E '^(Requests per second|Time per request|Time taken)' "$out" | sed 's/^/         /' | head -3 || true
    TOTAL_SENT=$((TOTAL_SENT + complete))
    TOTAL_FAILED=$((TOTAL_FAILED + bad))
    if ((rc != 0)); then
        fail "ab ($name) exited with status $rc"
        tail -n 5 "$out" | sed 's/^/         /'
    fi
    ((complete > 0)) || fail "ab ($name) completed no requests"
    ((bad == 0)) || {
        fail "client saw $bad failed request(s) during '$name'"
        grep -E '^ *\(Connect|^Failed|^Non-2xx' "$out" | sed 's/^/         /' || true
    }
}

# ---------------------------------------------------------------- setup
if [[ -f "$DIR/cluster.env" ]]; then
    "$CLUSTER" down --dir "$DIR" --timeout 5 >/dev/null 2>&1 || true
fi
# Only wipe a directory this script created (it holds www/ or cluster.env).
if [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -d "$DIR/www" && ! -f "$DIR/cluster.env" ]]; then
    fatal "$DIR exists and was not made by $PROG; refusing to wipe it (set CLUSTER_TEST_DIR)"
fi
rm -rf "$DIR"
mkdir -p "$DIR/www"
{
    echo '<!doctype html><title>hearth cluster test</title>'
    for i in $(seq 1 40); do echo "<p>line $i of the cluster-test page</p>"; done
} >"$DIR/www/index.html"
# For a download that is still in flight when SIGTERM arrives (phase 2).
# 48 MiB: well past what loopback socket buffers absorb, so the server is
# still writing it when the signal comes.
head -c $((48 * 1024 * 1024)) /dev/urandom >"$DIR/www/big.bin"

say "starting HAProxy on :$PORT and $INSTANCES instances on :$BASE_PORT-$((BASE_PORT + INSTANCES - 1))"
cluster up --instances "$INSTANCES" --port "$PORT" --base-port "$BASE_PORT" \
    --stats-port "$STATS_PORT" --root "$DIR/www" --threads 2 --grace "$GRACE" \
    >"$DIR/cluster-up.txt" 2>&1 || {
    cat "$DIR/cluster-up.txt"
    fatal "cluster.sh up failed"
}
say "binary: $(awk -F': ' '/binary/ {print $2}' "$DIR/cluster-up.txt")"
for k in 1 2 3; do wait_status "h$k" '^UP' 10 || fatal "h$k never came UP"; done

body="$(curl -sf --max-time 2 "$URL")" || fatal "GET $URL through HAProxy failed"
[[ "$body" == "$(cat "$DIR/www/index.html")" ]] || fatal "body through HAProxy differs from the file"
say "GET through HAProxy returns the file"

# ---------------------------------------------------------------- phase 1: SIGKILL
echo
say "=== phase 1: SIGKILL h2 under load, then restart it"
start_load kill "$LOAD1"
sleep 2
load_running || fatal "ab finished or died within 2s (see $DIR/ab-kill.txt)"
pid2="$(inst_pid 2)"
[[ -n "$pid2" ]] || fatal "no pid for h2"
kill -KILL "$pid2"
say "sent SIGKILL to h2 (pid $pid2)"
wait_status h2 '^DOWN' 10 || true
sleep 1
say "restarting h2"
cluster start-instance 2 >>"$DIR/cluster-up.txt" 2>&1 || fail "cluster.sh start-instance 2 failed"
wait_status h2 '^UP' 10 || true
load_running || fail "load 'kill' ended before h2 was back UP; the restart was not under load (raise CLUSTER_TEST_LOAD1)"
finish_load kill

# ---------------------------------------------------------------- phase 2: SIGTERM
echo
say "=== phase 2: graceful SIGTERM of h3 under load, then restart it"
start_load term "$LOAD2"
sleep 2
load_running || fatal "ab finished or died within 2s (see $DIR/ab-term.txt)"
pid3="$(inst_pid 3)"
[[ -n "$pid3" ]] || fatal "no pid for h3"
# A slow download straight from h3 (48 MiB at 16 MiB/s, about 3s, inside
# the 5s grace) that must complete although SIGTERM arrives in the middle.
timeout 20 curl -s --max-time 15 --limit-rate 16M -o "$DIR/big.out" \
    -w '%{http_code} %{size_download}\n' "http://127.0.0.1:$((BASE_PORT + 2))/big.bin" \
    >"$DIR/big.txt" 2>&1 &
dl_pid=$!
sleep 0.7
t0=$(date +%s%N)
kill -TERM "$pid3"
say "sent SIGTERM to h3 (pid $pid3) with a 3s download from it in flight"
end=$((SECONDS + GRACE + 5))
while running "$pid3" && ((SECONDS < end)); do sleep 0.1; done
if running "$pid3"; then
    fail "h3 still running $((GRACE + 5))s after SIGTERM; killing it"
    kill -KILL "$pid3" 2>/dev/null || true
else
    ms=$((($(date +%s%N) - t0) / 1000000))
    say "h3 exited ${ms}ms after SIGTERM"
    ((ms >= 500)) || say "note: h3 exited before the download could have finished; it must have been in socket buffers"
    [[ ! -e "$DIR/h3/hearth.pid" ]] || fail "h3 left its pid file behind after SIGTERM (not a clean exit?)"
fi
dl_rc=0
wait "$dl_pid" || dl_rc=$?
if ((dl_rc == 0)) && cmp -s "$DIR/big.out" "$DIR/www/big.bin"; then
    say "in-flight download from h3 completed intact ($(cat "$DIR/big.txt"))"
else
    fail "in-flight download from h3 was cut short by SIGTERM (curl exit $dl_rc, got: $(cat "$DIR/big.txt" 2>/dev/null))"
fi
TOTAL_SENT=$((TOTAL_SENT + 1))
((dl_rc == 0)) || TOTAL_FAILED=$((TOTAL_FAILED + 1))
wait_status h3 '^DOWN' 10 || true
say "restarting h3"
cluster start-instance 3 >>"$DIR/cluster-up.txt" 2>&1 || fail "cluster.sh start-instance 3 failed"
wait_status h3 '^UP' 10 || true
load_running || say "note: load 'term' ended before h3 was back UP"
finish_load term

# ---------------------------------------------------------------- verdict
echo
say "=== HAProxy stats (show stat)"
csv="$(cluster stat-csv)" || fail "could not read HAProxy stats"
printf '%s\n' "$csv" | awk -F, '
    NR == 1 {
        sub(/^# /, "")
        for (i = 1; i <= NF; i++) col[$i] = i
        n = split("pxname svname status check_status stot hrsp_2xx hrsp_5xx econ eresp wretr wredis chkdown downtime", want, " ")
        for (j = 1; j <= n; j++) printf "%-13s", want[j]; printf "\n"
        next
    }
    $1 == "fe_hearth" || $1 == "be_hearth" {
        for (j = 1; j <= n; j++) { v = $(col[want[j]]); printf "%-13s", (v == "" ? "-" : v) }
        printf "\n"
    }'
printf '%s\n' "$csv" >"$DIR/stats.csv"
echo "stats CSV lines (first 44 columns; full CSV in $DIR/stats.csv):"
printf '%s\n' "$csv" | awk -F, 'NR == 1 || $1 == "fe_hearth" || $1 == "be_hearth"' | cut -d, -f1-44

for k in 1 2 3; do
    st="$(srv_field "h$k" status)"
    [[ "$st" == UP* ]] || fail "h$k is '$st' at the end, expected UP"
    stot="$(srv_field "h$k" stot)"
    ((${stot:-0} > 0)) || fail "h$k served no sessions"
done
for k in 2 3; do
    down="$(srv_field "h$k" chkdown)"
    ((${down:-0} >= 1)) || fail "HAProxy never marked h$k DOWN (chkdown=${down:-?})"
done
fe5xx="$(printf '%s\n' "$csv" | awk -F, 'NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "fe_hearth" && $2 == "FRONTEND" { print $(col["hrsp_5xx"]) }')"
((${fe5xx:-0} == 0)) || fail "HAProxy answered $fe5xx 5xx response(s) to clients"

echo
echo "requests sent: $TOTAL_SENT"
echo "failed:        $TOTAL_FAILED"
# HAProxy logs only abnormal requests (option dontlog-normal). Lines whose
# retries field (the fifth number of "act/fe/be/srv/retries") is non-zero are
# requests HAProxy retried, "+N" meaning redispatched to another server.
if [[ -s "$DIR/haproxy.log" ]]; then
    retried="$(grep -cE ' [0-9]+/[0-9]+/[0-9]+/[0-9]+/\+?[1-9][0-9]* ' "$DIR/haproxy.log" || true)"
    echo "HAProxy log: ${retried:-0} request(s) retried or redispatched; examples:"
    grep -E ' [0-9]+/[0-9]+/[0-9]+/[0-9]+/\+?[1-9][0-9]* ' "$DIR/haproxy.log" | head -n 3 | sed 's/^/  /' || true
fi
