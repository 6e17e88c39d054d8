#!/usr/bin/env bash
# Runs every test of auditcol. Installs what the tests need on a fresh machine
# (a Python venv with the OpenTelemetry SDK and confluent-kafka, the Tansu
# Kafka broker, cargo-fuzz for scripts/fuzz.sh) and skips what is already there.
#
#   scripts/test.sh              # everything
#   scripts/test.sh -E 'test(/otlp/)'   # extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${AUDITCOL_CACHE:-$HOME/.cache/auditcol}"
# The same build directory as `cargo run` (./target), so the README's two
# commands build the collector once; CI points CARGO_TARGET_DIR at a cache
# outside its fresh clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$CACHE"

# 1. Python venv with the official OpenTelemetry SDK (the OTLP client of the e2e tests).
VENV="$CACHE/venv"
REQ=tests/python/requirements.txt
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "==> installing Python test dependencies into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$STAMP"
else
  echo "==> Python test dependencies already installed ($VENV)"
fi
export AUDITCOL_PYTHON="$VENV/bin/python"

# 2. Tansu, the Apache-Kafka-compatible broker of the Kafka tests, once per
#    machine (a release build of ~8-15 minutes on 2 cores; `dynostore` brings
#    the in-memory storage engine the tests use).
if tansu --version >/dev/null 2>&1 || "$HOME/.cargo/bin/tansu" --version >/dev/null 2>&1; then
  echo "==> Tansu already installed ($(tansu --version 2>/dev/null || "$HOME/.cargo/bin/tansu" --version))"
else
  echo "==> installing Tansu (cargo install tansu --locked --features dynostore; once per machine)"
  # Built in cargo's temporary directory, not the workspace's target.
  env -u CARGO_TARGET_DIR cargo install tansu --locked --features dynostore
fi

# 3. cargo-fuzz, for the fuzz targets of fuzz/ (scripts/fuzz.sh runs them
#    with the nightly toolchain; CI runs each for 30 s after the tests).
if cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo-fuzz already installed ($(cargo fuzz --version))"
else
  echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked; once per machine)"
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked
fi

# 4. The binary the end-to-end tests start.
echo "==> building auditcol (into $CARGO_TARGET_DIR)"
cargo build -p auditcol --bin auditcol
export AUDITCOL_BIN="$CARGO_TARGET_DIR/debug/auditcol"

# 5. Every test of the workspace.
echo "==> running tests"
if cargo nextest --version >/dev/null 2>&1; then
  # Doc tests first: nextest does not run them, and its summary should close the output.
  echo "==> building and running the doc tests"
  cargo test --workspace --doc
  echo "==> building and running the tests"
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
