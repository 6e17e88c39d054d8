#!/usr/bin/env bash
# The cost of the integrity trail (see BENCHMARKS.md, "Integrity trail").
#
# Runs the same OTLP load (tests/loadgen.rs) against the file exporter with
# `integrity` (collector-config/bench-file-json-integrity.yaml: hash chain,
# Ed25519 checkpoints once a second, rotation at 256 MiB) and without it (the
# same file minus its `integrity` block), alternating on/off so that both
# see the same machine, and prints records/s and collector CPU-seconds per
# run. Then it writes a trail of BENCH_VERIFY_RECORDS records (about 1 GB at
# the default) and times `auditcol verify` over it, single-threaded.
#
# Usage: bench/integrity.sh [--no-build] [--help]
#
# Environment (defaults in brackets):
#   BENCH_SECONDS         measured seconds per run [10]
#   BENCH_PAIRS           on/off pairs [3]
#   BENCH_CONNECTIONS     loadgen connections [4]
#   BENCH_BATCH           records per request [512]
#   BENCH_PROTOCOL        grpc | http [grpc]
#   BENCH_SYNC            true: the file exporter's `sync: true` (fdatasync and,
#                         with integrity, a checkpoint before each acknowledgement) [false]
#   BENCH_VERIFY_RECORDS  records of the trail timed with verify [4200000; 0 = skip]
#   BENCH_DIR             where the trails, keys and logs go [/tmp/auditcol-bench-integrity]
#   CARGO_TARGET_DIR      cargo's target directory [./target]
#
# Writes up to ~1 GB per run (256 MiB files, 2 backups kept) and ~1.1 GB for
# the verify trail, deleted as it goes. Binds 127.0.0.1 only. Not part of CI.
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
VERIFY_RECORDS=${BENCH_VERIFY_RECORDS:-4200000}
DIR=${BENCH_DIR:-/tmp/auditcol-bench-integrity}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
AUDITCOL=$TARGET_DIR/release/auditcol
LOADGEN=$TARGET_DIR/release/loadgen
CLK_TCK=$(getconf CLK_TCK)

die() { echo "error: $*" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
  cargo build --release -p auditcol -p auditcol-e2e --bins
fi
[ -x "$AUDITCOL" ] && [ -x "$LOADGEN" ] || die "build first: cargo build --release -p auditcol -p auditcol-e2e --bins"

mkdir -p "$DIR"
ON=collector-config/bench-file-json-integrity.yaml
OFF=$DIR/bench-file-json-no-integrity.yaml
# The same config without its `integrity:` block (two lines).
sed '/^    integrity:$/,/signing_key_file:/d' "$ON" >"$OFF"
grep -q '^ *integrity:' "$OFF" && die "could not remove the integrity block from $ON"
[ -f "$DIR/keys/auditcol-signing.pem" ] || "$AUDITCOL" keygen --out "$DIR/keys" >/dev/null

PID=
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null || true; }
trap cleanup EXIT

# start CONFIG LOG: starts auditcol writing its trail to $DIR/trail; sets PID and ENDPOINT.
start() {
  rm -rf "$DIR/trail"
  : >"$2" # emptied here, not by the child: a stale log must not answer the wait below
  BENCH_GRPC_ENDPOINT=127.0.0.1:0 BENCH_HTTP_ENDPOINT=127.0.0.1:0 \
    BENCH_OUT="$DIR/trail/audit.jsonl" BENCH_SIGNING_KEY="$DIR/keys/auditcol-signing.pem" \
    BENCH_MAX_BACKUPS="${MAX_BACKUPS:-2}" BENCH_SYNC="${BENCH_SYNC:-false}" RUST_LOG=info NO_COLOR=1 \
    "$AUDITCOL" --config "$1" </dev/null >"$2" 2>&1 &
  PID=$!
  local deadline=$((SECONDS + 30))
  until grep -q "auditcol is running" "$2"; do
    kill -0 "$PID" 2>/dev/null || die "auditcol exited at start: $(cat "$2")"
    [ $SECONDS -lt $deadline ] || die "auditcol did not start within 30 s"
    sleep 0.05
  done
  ENDPOINT=$(sed 's/"//g' "$2" | sed -n "s/.*listening.*protocol=$PROTOCOL.*endpoint=\([0-9.:]*\).*/\1/p" | head -n 1)
  [ -n "$ENDPOINT" ] || die "no $PROTOCOL listener in $2"
}

stop() {
  kill -TERM "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  PID=
}

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

echo "| run | integrity | records/s | collector CPU-s | records/CPU-s | p99 ms | other CPU-s |"
echo "|---|---|---:|---:|---:|---:|---:|"
for ((pair = 1; pair <= PAIRS; pair++)); do
  for setup in off on; do
    config=$OFF
    [ "$setup" = on ] && config=$ON
    start "$config" "$DIR/$setup-$pair.log"
    # warm-up
    "$LOADGEN" --protocol "$PROTOCOL" --endpoint "$ENDPOINT" --duration 1 \
      --batch "$BATCH" --connections "$CONNECTIONS" >/dev/null
    cpu0=$(cpu_ticks "$PID")
    busy0=$(machine_busy_ticks)
    line=$("$LOADGEN" --protocol "$PROTOCOL" --endpoint "$ENDPOINT" --duration "$SECONDS_PER_RUN" \
      --batch "$BATCH" --connections "$CONNECTIONS" | tail -n 2 | tr '\n' ' ')
    sleep 0.3
    cpu1=$(cpu_ticks "$PID")
    busy1=$(machine_busy_ticks)
    stop
    records=$(field records "$line")
    rps=$(field records_per_s "$line")
    cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    other=$(awk -v b="$((busy1 - busy0 - (cpu1 - cpu0)))" -v l="$(field loadgen_cpu_s "$line")" -v hz="$CLK_TCK" \
      'BEGIN { o = b / hz - l; printf "%.2f", (o > 0 ? o : 0) }')
    printf '| %d | %s | %.0f | %s | %.0f | %s | %s |\n' "$pair" "$setup" "$rps" "$cpu" \
      "$(awk -v r="$records" -v c="$cpu" 'BEGIN { print (c > 0 ? r / c : 0) }')" "$(field p99_ms "$line")" "$other"
  done
done
rm -rf "$DIR/trail"

if [ "$VERIFY_RECORDS" != 0 ]; then
  MAX_BACKUPS=0 start "$ON" "$DIR/verify-trail.log"
  "$LOADGEN" --protocol "$PROTOCOL" --endpoint "$ENDPOINT" --records "$VERIFY_RECORDS" \
    --batch "$BATCH" --connections "$CONNECTIONS" >/dev/null
  stop
  bytes=$(cat "$DIR"/trail/*.jsonl | wc -c)
  cat "$DIR"/trail/* >/dev/null # in the page cache, as just written
  echo
  echo "verify: $bytes bytes of trail in $(ls "$DIR"/trail/*.jsonl | wc -l) files"
  for run in 1 2 3; do
    start_ns=$(date +%s%N)
    out=$("$AUDITCOL" verify --public-key "$DIR/keys/auditcol-signing.pub.pem" "$DIR/trail")
    end_ns=$(date +%s%N)
    awk -v b="$bytes" -v ns="$((end_ns - start_ns))" -v run="$run" \
      'BEGIN { printf "  run %d: %.2f s, %.0f MB/s\n", run, ns / 1e9, b / 1e6 / (ns / 1e9) }'
  done
  echo "  $out"
  rm -rf "$DIR/trail"
fi
