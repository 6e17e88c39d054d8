#!/usr/bin/env bash
# Side-by-side benchmark of auditcol and Rotel (see BENCHMARKS.md).
#
# Runs the same OTLP load (tests/loadgen.rs: pre-encoded requests, N
# connections each waiting for its answer) against three collector setups:
#
#   rotel         rotel-agent start --exporter blackhole          (OTLP -> nothing)
#   auditcol      collector-config/bench-file-json.yaml           (OTLP -> filter *:* -> batch -> file json /dev/null)
#   auditcol-nop  collector-config/bench-file-json-nop.yaml       (OTLP -> file json /dev/null)
#
# for each protocol (gRPC, HTTP) and each load (connections x records per
# request), starting every collector fresh, and prints a Markdown table:
# records/s, collector CPU-seconds during the measured run (utime+stime from
# /proc/PID/stat), records per collector CPU-second, peak RSS (VmHWM), p50/p99
# latency, the load generator's own CPU-seconds, the CPU-seconds the rest of
# the machine used meanwhile (other CPU-s: anything well above 0 means the
# run shared the CPUs with something else), and the ratios auditcol/Rotel.
#
# Usage: bench/compare.sh [--no-build] [--help]
#
# Environment (defaults in brackets):
#   BENCH_SECONDS    measured seconds per run [5]
#   BENCH_RECORDS    send this many records per run instead of BENCH_SECONDS
#   BENCH_WARMUP     warm-up seconds before each measured run [1]
#   BENCH_SETTLE     seconds to wait after the run before reading the CPU time [0.3]
#   BENCH_LOADS      connections x records per request ["1x100 4x512 8x1024 16x512"]
#   BENCH_PROTOCOLS  ["grpc http"]
#   BENCH_SETUPS     ["rotel auditcol auditcol-nop"]
#   BENCH_LOADGEN_THREADS  worker threads of the load generator [1]
#   BENCH_QUIET_WAIT before each run, wait up to this many seconds for the
#                    machine to be quiet (under 10% busy over 1 s) [30; 0 = no wait]
#   BENCH_MAX_OTHER  a run during which other processes used more than this
#                    share of one CPU is repeated [0.1]
#   BENCH_ATTEMPTS   runs at most per cell; the least disturbed one is kept [3]
#   BENCH_BUILD      0 = do not build (same as --no-build) [1]
#   BENCH_OUT_DIR    where logs and results go [<target>/bench/run-<time>]
#   ROTEL_VERSION    PyPI version of `rotel` to install [0.0.1a15]
#   ROTEL_BIN        use this rotel-agent instead of installing one
#   CARGO_TARGET_DIR cargo's target directory [./target]; Rotel's venv lives
#                    in <target>/bench/rotel-venv-<version>
#
# Default run: 2 protocols x 4 loads x 3 setups = 24 runs of ~9 s: ~4 minutes
# on a quiet machine.
# Everything binds 127.0.0.1 only. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_args "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
RECORDS=${BENCH_RECORDS:-}
WARMUP=${BENCH_WARMUP:-1}
SETTLE=${BENCH_SETTLE:-0.3}
LOADS=${BENCH_LOADS:-"1x100 4x512 8x1024 16x512"}
PROTOCOLS=${BENCH_PROTOCOLS:-"grpc http"}
SETUPS=${BENCH_SETUPS:-"rotel auditcol auditcol-nop"}
THREADS=${BENCH_LOADGEN_THREADS:-1}
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
ATTEMPTS=${BENCH_ATTEMPTS:-3}
MAX_OTHER=${BENCH_MAX_OTHER:-0.1}
ROTEL_VERSION=${ROTEL_VERSION:-0.0.1a15}
OUT=${BENCH_OUT_DIR:-$TARGET_DIR/bench/run-$(date +%Y%m%dT%H%M%S)}
AUDITCOL=$TARGET_DIR/release/auditcol
LOADGEN=$TARGET_DIR/release/loadgen
CLK_TCK=$(getconf CLK_TCK)

log() { echo "==> $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# --- cleanup: the load generator and collector this script started -------
RUNNING_PID=
LOADGEN_PID=
cleanup() {
  if [ -n "$LOADGEN_PID" ] && kill -0 "$LOADGEN_PID" 2>/dev/null; then
    kill -TERM "$LOADGEN_PID" 2>/dev/null || true
    wait "$LOADGEN_PID" 2>/dev/null || true
  fi
  if [ -n "$RUNNING_PID" ] && kill -0 "$RUNNING_PID" 2>/dev/null; then
    kill -TERM "$RUNNING_PID" 2>/dev/null || true
    wait "$RUNNING_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. binaries ---------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "building auditcol and loadgen (release) in $TARGET_DIR"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p auditcol -p auditcol-e2e --bins
fi
[ -x "$AUDITCOL" ] || die "$AUDITCOL is missing (build it, or run without --no-build)"
[ -x "$LOADGEN" ] || die "$LOADGEN is missing (build it, or run without --no-build)"

# --- 2. Rotel, in a venv under the target directory ----------------------
if [[ " $SETUPS " == *" rotel "* ]]; then
  if [ -z "${ROTEL_BIN:-}" ]; then
    VENV=$TARGET_DIR/bench/rotel-venv-$ROTEL_VERSION
    find_rotel() { [ -d "$VENV" ] && find "$VENV" -name rotel-agent -type f -perm -u+x | head -n 1 || true; }
    ROTEL_BIN=$(find_rotel)
    if [ -z "$ROTEL_BIN" ]; then
      log "installing rotel==$ROTEL_VERSION into $VENV"
      rm -rf "$VENV"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check "rotel==$ROTEL_VERSION"
      ROTEL_BIN=$(find_rotel)
      [ -n "$ROTEL_BIN" ] || die "rotel==$ROTEL_VERSION installed no rotel-agent binary"
    fi
  fi
  [ -x "$ROTEL_BIN" ] || die "ROTEL_BIN=$ROTEL_BIN is not executable"
fi

mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"

# --- helpers -------------------------------------------------------------
# Two free TCP ports on 127.0.0.1 (Rotel cannot listen on port 0).
free_ports() {
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# Waits up to QUIET_WAIT seconds until the machine is under 10% busy over 1 s.
NCPU=$(nproc)
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) b0 b1
  while [ "$SECONDS" -lt "$deadline" ]; do
    b0=$(machine_busy_ticks)
    sleep 1
    b1=$(machine_busy_ticks)
    [ $(((b1 - b0) * 10)) -lt $((CLK_TCK * NCPU)) ] && return 0
  done
  [ "$QUIET_WAIT" = 0 ] || log "the machine is still busy after ${QUIET_WAIT} s; measuring anyway (see other CPU-s)"
}

# Peak resident set size of a process, in kB.
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts collector $1 (a setup name) logging to $2; sets CPID, GRPC_EP, HTTP_EP.
start_collector() {
  local setup=$1 logfile=$2 deadline=$((SECONDS + 30))
  : >"$logfile"
  case "$setup" in
    rotel)
      local ports
      read -r -a ports <<<"$(free_ports)"
      GRPC_EP=127.0.0.1:${ports[0]}
      HTTP_EP=127.0.0.1:${ports[1]}
      "$ROTEL_BIN" start --exporter blackhole \
        --otlp-grpc-endpoint "$GRPC_EP" --otlp-http-endpoint "$HTTP_EP" \
        --pid-file "$OUT/rotel.pid" --log-file "$OUT/rotel.log" \
        </dev/null >"$logfile" 2>&1 &
      CPID=$!
      RUNNING_PID=$CPID
      until port_open "${ports[0]}" && port_open "${ports[1]}"; do
        kill -0 "$CPID" 2>/dev/null || die "rotel-agent exited at start:
$(cat "$logfile")"
        [ $SECONDS -lt $deadline ] || die "rotel-agent did not listen within 30 s"
        sleep 0.05
      done
      ;;
    auditcol | auditcol-nop)
      local config=collector-config/bench-file-json.yaml
      [ "$setup" = auditcol-nop ] && config=collector-config/bench-file-json-nop.yaml
      BENCH_GRPC_ENDPOINT=127.0.0.1:0 BENCH_HTTP_ENDPOINT=127.0.0.1:0 BENCH_OUT=/dev/null \
        RUST_LOG=info NO_COLOR=1 "$AUDITCOL" --config "$config" \
        </dev/null >"$logfile" 2>&1 &
      CPID=$!
      RUNNING_PID=$CPID
      until grep -q "auditcol is running" "$logfile"; do
        kill -0 "$CPID" 2>/dev/null || die "auditcol exited at start:
$(cat "$logfile")"
        [ $SECONDS -lt $deadline ] || die "auditcol did not start within 30 s"
        sleep 0.05
      done
      # `listening ... protocol=grpc endpoint=127.0.0.1:PORT` (quotes and colours stripped)
      GRPC_EP=$(sed 's/\x1b\[[0-9;]*m//g; s/"//g' "$logfile" |
        sed -n 's/.*listening.*protocol=grpc.*endpoint=\([0-9.:]*\).*/\1/p' | head -n 1)
      HTTP_EP=$(sed 's/\x1b\[[0-9;]*m//g; s/"//g' "$logfile" |
        sed -n 's/.*listening.*protocol=http.*endpoint=\([0-9.:]*\).*/\1/p' | head -n 1)
      [ -n "$GRPC_EP" ] && [ -n "$HTTP_EP" ] || die "no listening addresses in $logfile"
      ;;
    *) die "unknown setup $setup (rotel, auditcol, auditcol-nop)" ;;
  esac
}

stop_collector() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  RUNNING_PID=
}

# Runs the load generator with arguments $3...: its result line goes to file
# $1, its messages are appended to file $2. In the background, so that a
# signal to this script is handled at once.
run_loadgen() {
  local out=$1 err=$2 rc=0
  shift 2
  "$LOADGEN" "$@" >"$out" 2>>"$err" &
  LOADGEN_PID=$!
  wait "$LOADGEN_PID" || rc=$?
  LOADGEN_PID=
  return "$rc"
}

# Value of key $1 in a loadgen line $2.
field() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# --- 3. the runs ---------------------------------------------------------
if [ -n "$RECORDS" ]; then LENGTH=(--records "$RECORDS"); else LENGTH=(--duration "$SECONDS_PER_RUN"); fi
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
crates_commit=$(git log -1 --format=%h -- crates 2>/dev/null || echo unknown)
rotel_version=none
[ -n "${ROTEL_BIN:-}" ] && rotel_version="rotel==$ROTEL_VERSION ($("$ROTEL_BIN" --version 2>/dev/null || echo '?'))"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $commit (crates/ last changed in $crates_commit)"
  echo "machine: $(nproc) CPUs, $(uname -sr); the load generator runs on the same CPUs"
  echo "rotel: $rotel_version"
  echo "run: ${RECORDS:+$RECORDS records}${RECORDS:-$SECONDS_PER_RUN s} per run after ${WARMUP} s warm-up; loadgen threads: $THREADS"
  echo "disturbance: up to $ATTEMPTS attempts per cell, the first during which other processes used at most $MAX_OTHER of a CPU (else the least disturbed) is kept"
} | tee "$OUT/header.txt" >&2

# One measured run of setup $3 under protocol $1 and load $2 (CONNSxBATCH),
# attempt $4: sets ROW to its result (tab-separated); returns 1 if the
# collector died or a request failed. (Not in a subshell: the EXIT trap must
# see RUNNING_PID.)
measure() {
  local proto=$1 load=$2 setup=$3 attempt=$4
  local conns=${load%x*} batch=${load#*x} name=$1-$2-$3-$4 ep rc=0 line
  local cpu0 cpu1 busy0 busy1 rss loadgen_cpu other
  start_collector "$setup" "$OUT/$name.log"
  ep=$GRPC_EP
  [ "$proto" = http ] && ep=$HTTP_EP
  local common=(--protocol "$proto" --endpoint "$ep" --connections "$conns" --batch "$batch" --threads "$THREADS")
  if [ "$WARMUP" != 0 ]; then
    run_loadgen "$OUT/$name.warmup" "$OUT/$name.loadgen" "${common[@]}" --duration "$WARMUP" ||
      log "warm-up had failures (see $OUT/$name.loadgen)"
  fi
  cpu0=$(cpu_ticks "$CPID")
  busy0=$(machine_busy_ticks)
  run_loadgen "$OUT/$name.result" "$OUT/$name.loadgen" "${common[@]}" "${LENGTH[@]}" || rc=$?
  line=$(<"$OUT/$name.result")
  sleep "$SETTLE"
  if ! kill -0 "$CPID" 2>/dev/null; then
    log "$setup died during the run (see $OUT/$name.log)"
    wait "$CPID" 2>/dev/null || true
    RUNNING_PID=
    return 1
  fi
  cpu1=$(cpu_ticks "$CPID")
  busy1=$(machine_busy_ticks)
  rss=$(peak_rss_kb "$CPID")
  stop_collector "$CPID"
  loadgen_cpu=$(field loadgen_cpu_s "$line")
  other=$(awk -v b="$((busy1 - busy0 - (cpu1 - cpu0)))" -v l="${loadgen_cpu:-0}" -v hz="$CLK_TCK" \
    'BEGIN { o = b / hz - l; printf "%.2f", (o < 0 ? 0 : o) }')
  ROW=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' \
    "$proto" "$load" "$setup" "$(field records "$line")" "$(field elapsed_s "$line")" \
    "$(field records_per_s "$line")" "$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
    "$rss" "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(field failures "$line")" \
    "$loadgen_cpu" "$other")
  [ "$rc" = 0 ] || { log "loadgen reported failures: $line"; return 1; }
}

# Share of one CPU that the rest of the machine used during a result row.
other_share() { awk -F'\t' '{ printf "%.3f", ($5 > 0) ? $13 / $5 : 1 }' <<<"$1"; }

failed_runs=0
for proto in $PROTOCOLS; do
  for load in $LOADS; do
    for setup in $SETUPS; do
      best= best_share=
      for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
        wait_quiet
        log "$proto ${load/x/ x } -> $setup (attempt $attempt)"
        measure "$proto" "$load" "$setup" "$attempt" || { failed_runs=$((failed_runs + 1)); continue 2; }
        share=$(other_share "$ROW")
        if [ -z "$best" ] || awk -v a="$share" -v b="$best_share" 'BEGIN { exit !(a < b) }'; then
          best=$ROW best_share=$share
        fi
        awk -v s="$share" -v m="$MAX_OTHER" 'BEGIN { exit !(s <= m) }' && break
        log "other processes used ${share} of a CPU during the run (limit $MAX_OTHER)"
      done
      echo "$best" >>"$RESULTS"
    done
  done
done

# --- 4. the tables -------------------------------------------------------
{
sed 's/^/- /' "$OUT/header.txt"
echo
awk -F'\t' '
  function num(x) { return x + 0 }
  function fmt_int(x,   s, r) { s = sprintf("%.0f", x); r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } return s r }
  function ratio(a, b) { return (b > 0 && a != "") ? sprintf("%.2f", a / b) : "-" }
  {
    key = $1 SUBSEP $2 SUBSEP $3
    rps[key] = num($6); cpu[key] = num($7)
    per_cpu[key] = (num($7) > 0) ? num($4) / num($7) : 0
    if (!(($1 SUBSEP $2) in seen)) { seen[$1 SUBSEP $2] = 1; order[++n] = $1 SUBSEP $2 }
    row[++rows] = sprintf("| %s | %s | %s | %s | %.2f | %s | %.1f | %s | %s | %s | %s | %s |", \
      $1, $2, $3, fmt_int($6), num($7), fmt_int(per_cpu[key]), num($8) / 1024, $9, $10, $11, $12, $13)
  }
  END {
    print "| protocol | load (conn×batch) | setup | records/s | CPU-s | records/CPU-s | peak RSS MB | p50 ms | p99 ms | failures | loadgen CPU-s | other CPU-s |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= rows; i++) print row[i]
    print ""
    print "Ratios auditcol / Rotel (records per collector CPU-second, and records/s):"
    print ""
    print "| protocol | load (conn×batch) | auditcol/rotel rec/CPU-s | auditcol-nop/rotel rec/CPU-s | auditcol/rotel records/s | auditcol-nop/rotel records/s |"
    print "|---|---|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      split(order[i], pl, SUBSEP)
      r = order[i] SUBSEP "rotel"; a = order[i] SUBSEP "auditcol"; z = order[i] SUBSEP "auditcol-nop"
      printf "| %s | %s | %s | %s | %s | %s |\n", pl[1], pl[2], \
        ((a in per_cpu) ? ratio(per_cpu[a], per_cpu[r]) : "-"), ((z in per_cpu) ? ratio(per_cpu[z], per_cpu[r]) : "-"), \
        ((a in rps) ? ratio(rps[a], rps[r]) : "-"), ((z in rps) ? ratio(rps[z], rps[r]) : "-")
    }
  }
' "$RESULTS"
} | tee "$OUT/results.md"

log "logs and results in $OUT"
if [ "$failed_runs" -gt 0 ]; then
  log "$failed_runs run(s) had failures"
  exit 1
fi
