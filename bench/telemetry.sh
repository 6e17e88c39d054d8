#!/usr/bin/env bash
# The cost of the collector's own metrics (see BENCHMARKS.md, "Telemetry").
#
# Runs the same OTLP load (tests/loadgen.rs) against two auditcol binaries
# with the same pipeline (collector-config/bench-file-json.yaml: OTLP ->
# filter *:* -> batch -> file json to /dev/null): BENCH_BASELINE (a build
# from before the metrics) and the current build (metrics on 127.0.0.1:0,
# level normal, scraped every BENCH_SCRAPE seconds during the run),
# alternating so that both see the same machine, and prints records/s and
# collector CPU-seconds per run. After each current run it checks that the
# receiver's accepted counter equals the records the load generator sent.
#
# Usage: BENCH_BASELINE=path/to/old/auditcol bench/telemetry.sh [--no-build] [--help]
#
# Environment (defaults in brackets):
#   BENCH_BASELINE     the auditcol binary to compare with (required)
#   BENCH_SECONDS      measured seconds per run [10]
#   BENCH_PAIRS        baseline/current pairs [3]
#   BENCH_CONNECTIONS  loadgen connections [4]
#   BENCH_BATCH        records per request [512]
#   BENCH_PROTOCOL     grpc | http [grpc]
#   BENCH_SCRAPE       seconds between two scrapes of /metrics [1]
#   BENCH_DIR          where logs go [/tmp/auditcol-bench-telemetry]
#   CARGO_TARGET_DIR   cargo's target directory [./target]
#
# Binds 127.0.0.1 only. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_args "$@"

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
PAIRS=${BENCH_PAIRS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-4}
BATCH=${BENCH_BATCH:-512}
PROTOCOL=${BENCH_PROTOCOL:-grpc}
SCRAPE=${BENCH_SCRAPE:-1}
DIR=${BENCH_DIR:-/tmp/auditcol-bench-telemetry}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CURRENT=$TARGET_DIR/release/auditcol
LOADGEN=$TARGET_DIR/release/loadgen
BASELINE=${BENCH_BASELINE:-}
CLK_TCK=$(getconf CLK_TCK)
CONFIG=collector-config/bench-file-json.yaml

die() { echo "error: $*" >&2; exit 1; }

[ -n "$BASELINE" ] && [ -x "$BASELINE" ] || die "set BENCH_BASELINE to an auditcol binary built before the metrics (try --help)"
if [ "$BUILD" = 1 ]; then
  cargo build --release -p auditcol -p auditcol-e2e --bins
fi
[ -x "$CURRENT" ] && [ -x "$LOADGEN" ] || die "build first: cargo build --release -p auditcol -p auditcol-e2e --bins"
mkdir -p "$DIR"

PID=
SCRAPER=
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null || true
}
trap cleanup EXIT

# start BINARY LOG [ARGS...]: sets PID, ENDPOINT and (current only) METRICS.
start() {
  local binary=$1 log=$2
  shift 2
  : >"$log"
  BENCH_GRPC_ENDPOINT=127.0.0.1:0 BENCH_HTTP_ENDPOINT=127.0.0.1:0 BENCH_OUT=/dev/null \
    RUST_LOG=info NO_COLOR=1 "$binary" --config "$CONFIG" "$@" </dev/null >"$log" 2>&1 &
  PID=$!
  local deadline=$((SECONDS + 30))
  until grep -q "auditcol is running" "$log"; do
    kill -0 "$PID" 2>/dev/null || die "auditcol exited at start: $(cat "$log")"
    [ $SECONDS -lt $deadline ] || die "auditcol did not start within 30 s"
    sleep 0.05
  done
  ENDPOINT=$(sed 's/"//g' "$log" | sed -n "s/.*listening.*protocol=$PROTOCOL .*endpoint=\([0-9.:]*\).*/\1/p" | head -n 1)
  METRICS=$(sed 's/"//g' "$log" | sed -n "s/.*listening.*protocol=metrics .*endpoint=\([0-9.:]*\).*/\1/p" | head -n 1)
  [ -n "$ENDPOINT" ] || die "no $PROTOCOL listener in $log"
}

stop() {
  kill -TERM "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  PID=
}

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# The accepted-records counter of the receiver, summed over transports.
accepted() {
  curl -s "http://$METRICS/metrics" | awk '/^otelcol_receiver_accepted_log_records_total/ { s += $NF } END { print s + 0 }'
}

echo "| run | build | records/s | collector CPU-s | records/CPU-s | p99 ms | other CPU-s |"
echo "|---|---|---:|---:|---:|---:|---:|"
for ((pair = 1; pair <= PAIRS; pair++)); do
  for setup in baseline current; do
    if [ "$setup" = baseline ]; then
      start "$BASELINE" "$DIR/$setup-$pair.log"
    else
      start "$CURRENT" "$DIR/$setup-$pair.log" --set=service::telemetry::metrics::address=127.0.0.1:0
      [ -n "$METRICS" ] || die "no metrics listener in $DIR/$setup-$pair.log"
    fi
    # warm-up
    "$LOADGEN" --protocol "$PROTOCOL" --endpoint "$ENDPOINT" --duration 1 \
      --batch "$BATCH" --connections "$CONNECTIONS" >/dev/null
    before=0
    if [ "$setup" = current ]; then
      before=$(accepted)
      (while sleep "$SCRAPE"; do curl -s -o /dev/null "http://$METRICS/metrics"; done) &
      SCRAPER=$!
    fi
    cpu0=$(cpu_ticks "$PID")
    busy0=$(machine_busy_ticks)
    line=$("$LOADGEN" --protocol "$PROTOCOL" --endpoint "$ENDPOINT" --duration "$SECONDS_PER_RUN" \
      --batch "$BATCH" --connections "$CONNECTIONS" | tail -n 2 | tr '\n' ' ')
    sleep 0.3
    cpu1=$(cpu_ticks "$PID")
    busy1=$(machine_busy_ticks)
    records=$(field records "$line")
    if [ "$setup" = current ]; then
      kill "$SCRAPER" 2>/dev/null || true
      wait "$SCRAPER" 2>/dev/null || true
      SCRAPER=
      counted=$(($(accepted) - before))
      [ "$counted" = "$records" ] || die "otelcol_receiver_accepted_log_records counted $counted, loadgen sent $records"
    fi
    stop
    rps=$(field records_per_s "$line")
    cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    other=$(awk -v b="$((busy1 - busy0 - (cpu1 - cpu0)))" -v l="$(field loadgen_cpu_s "$line")" -v hz="$CLK_TCK" \
      'BEGIN { o = b / hz - l; printf "%.2f", (o > 0 ? o : 0) }')
    printf '| %d | %s | %.0f | %s | %.0f | %s | %s |\n' "$pair" "$setup" "$rps" "$cpu" \
      "$(awk -v r="$records" -v c="$cpu" 'BEGIN { print (c > 0 ? r / c : 0) }')" "$(field p99_ms "$line")" "$other"
  done
done
