#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer, nightly Rust), one
# after the other, each for SECONDS (default 30), and prints how many inputs
# each one ran. Installs cargo-fuzz when it is missing.
#
#   scripts/fuzz.sh                      # every target, 30 s each
#   scripts/fuzz.sh 600 otlp_json        # one target, 10 minutes
#   scripts/fuzz.sh 0                    # build only
#
# Exits non-zero when a target crashes, panics (a broken invariant), exceeds
# the per-input time or the memory bounds; the input that did it is kept
# and its path printed (fuzz/artifacts/<target>/...). Reproduce with
# `cargo +nightly fuzz run <target> <that path>`, minimise with
# `cargo +nightly fuzz tmin <target> <that path>`.
#
# Environment:
#   CARGO_TARGET_DIR        build directory (default ~/.cache/auditcol/target-fuzz)
#   AUDITCOL_FUZZ_CORPUS    where the growing corpora live (default ~/.cache/auditcol/fuzz-corpus)
#   AUDITCOL_FUZZ_RSS_MB    resident memory bound per target (default 2048)
#   AUDITCOL_FUZZ_MALLOC_MB largest single allocation (default 512)
#   AUDITCOL_FUZZ_TIMEOUT   seconds one input may take (default 10)
#   AUDITCOL_FUZZ_SANITIZER address (default, what CI runs) or none: several
#                           times the executions per second (7x for
#                           otlp_protobuf), for long runs that count
#                           executions; the only unsafe code the targets
#                           reach reads bytes already checked as UTF-8
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS_ALL=(otlp_protobuf otlp_json webhook_audit_json flagsmith_json kafka_message config_load)
DURATION="${1:-30}"
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${TARGETS_ALL[@]}")
case "$DURATION" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
for target in "${TARGETS[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
    echo "unknown fuzz target \`$target\` (targets: ${TARGETS_ALL[*]})" >&2
    exit 2
  fi
done

CACHE="${AUDITCOL_CACHE:-$HOME/.cache/auditcol}"
TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target-fuzz}"
CORPUS_ROOT="${AUDITCOL_FUZZ_CORPUS:-$CACHE/fuzz-corpus}"
RSS_MB="${AUDITCOL_FUZZ_RSS_MB:-2048}"
MALLOC_MB="${AUDITCOL_FUZZ_MALLOC_MB:-512}"
TIMEOUT="${AUDITCOL_FUZZ_TIMEOUT:-10}"
SANITIZER="${AUDITCOL_FUZZ_SANITIZER:-address}"
case "$SANITIZER" in
  address | none) ;;
  *) echo "AUDITCOL_FUZZ_SANITIZER must be address or none, not \`$SANITIZER\`" >&2; exit 2 ;;
esac
# Each sanitizer builds into its own directory: switching does not rebuild.
[ "$SANITIZER" = none ] && TARGET_DIR="$TARGET_DIR-nosan"

# 1. The tools: a nightly toolchain (sanitizer flags) and cargo-fuzz.
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 2
fi
if cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo-fuzz already installed ($(cargo fuzz --version))"
else
  echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked; once per machine)"
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked
fi

# 2. Build. fuzz/ is a workspace of its own; its lock starts from the main
#    workspace's, so the fuzzed code uses the versions auditcol ships with
#    (cargo adds only libfuzzer-sys and what it needs).
#    The sanitizer reaches C code too: the cc crate compiles zstd with
#    -fsanitize=address, so librdkafka's configure (which links its test
#    programs against that zstd) needs the sanitizer runtime at link time.
cp Cargo.lock fuzz/Cargo.lock
[ "$SANITIZER" = address ] && export LDFLAGS="${LDFLAGS:+$LDFLAGS }-fsanitize=address"
echo "==> building fuzz targets (cargo +nightly fuzz build -s $SANITIZER, target dir $TARGET_DIR)"
build_start=$(date +%s)
if [ ${#TARGETS[@]} -eq ${#TARGETS_ALL[@]} ]; then
  cargo +nightly fuzz build -s "$SANITIZER" --target-dir "$TARGET_DIR"
else
  for target in "${TARGETS[@]}"; do
    cargo +nightly fuzz build -s "$SANITIZER" --target-dir "$TARGET_DIR" "$target"
  done
fi
echo "==> built in $(($(date +%s) - build_start)) s"
[ "$DURATION" -eq 0 ] && exit 0

# 3. Seeds besides the checked-in ones (fuzz/corpus/<target>): files the
#    project keeps anyway. The configs of collector-config/ and every YAML
#    example of the READMEs (written out on each run: they change with the
#    docs) for config_load; the webhook test fixtures for the webhook targets.
SEEDS="$CACHE/fuzz-seeds"
rm -rf "$SEEDS" && mkdir -p "$SEEDS/config_load"
for readme in README.md crates/*/README.md; do
  name=$(basename "$(dirname "$readme")")
  [ "$readme" = README.md ] && name=auditcol-readme
  awk -v dir="$SEEDS/config_load" -v name="$name" '
    /^```yaml/ { n++; file = sprintf("%s/%s-%d.yaml", dir, name, n); inside = 1; next }
    /^```/ { inside = 0; next }
    inside { print > file }
  ' "$readme"
done
extra_seeds() {
  case "$1" in
    config_load) echo collector-config "$SEEDS/config_load" ;;
    webhook_audit_json | flagsmith_json) echo crates/auditcol-receiver-webhook/testdata ;;
  esac
}

# 4. Run each target. New inputs go to the corpus outside the clone (the
#    first directory); the seed directories are only read.
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
failed=()
summary=()
for target in "${TARGETS[@]}"; do
  corpus="$CORPUS_ROOT/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  args=(
    -max_total_time="$DURATION"
    -rss_limit_mb="$RSS_MB"
    -malloc_limit_mb="$MALLOC_MB"
    -timeout="$TIMEOUT"
    -print_final_stats=1
  )
  [ -f "fuzz/dict/$target.dict" ] && args+=(-dict="fuzz/dict/$target.dict")
  echo "==> fuzzing $target for ${DURATION} s"
  log="$LOGS/$target.log"
  status=0
  # shellcheck disable=SC2046 # the seed directories have no spaces
  cargo +nightly fuzz run -s "$SANITIZER" --target-dir "$TARGET_DIR" "$target" \
    "$corpus" "fuzz/corpus/$target" $(extra_seeds "$target") -- "${args[@]}" >"$log" 2>&1 || status=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  runs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  line=$(printf '%-20s %12s runs  %8s/s  peak RSS %5s MB' \
    "$target" "${runs:-?}" "${rate:-?}" "${rss:-?}")
  if [ "$status" -ne 0 ]; then
    # libFuzzer's report from its start: the panic message (a broken
    # invariant says which), a crash, a timeout or running out of memory.
    start=$(grep -n -m 1 -E 'panicked at|ERROR: |ALARM: ' "$log" | cut -d: -f1)
    if [ -n "$start" ]; then
      sed -n "${start},$((start + 40))p" "$log" >&2
    else
      grep -v -E '^#[0-9]+[[:space:]]' "$log" | tail -n 40 >&2
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    line="$line  FAILED (exit $status)${artifact:+: $artifact}"
    failed+=("$target")
  fi
  echo "$line"
  summary+=("$line")
done

echo "==> executions per target (${DURATION} s each)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "==> FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
