#!/usr/bin/env bash
# Kills the collector with SIGKILL at random moments, CYCLES times (default
# 20; CI runs 5), while a client streams numbered events through a persistent
# queue into a file and a webhook sink; then checks that every acknowledged
# event arrived in both and reports the duplicates.
#
#   scripts/crash-loop.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUDITCOL_CACHE:-$HOME/.cache/auditcol}/target}"
export AUDITCOL_PYTHON="${AUDITCOL_PYTHON:-${AUDITCOL_CACHE:-$HOME/.cache/auditcol}/venv/bin/python}"
cargo build --quiet -p auditcol --bin auditcol
export AUDITCOL_BIN="$CARGO_TARGET_DIR/debug/auditcol"
AUDITCOL_CRASH_CYCLES="${1:-20}" cargo test --quiet -p auditcol-e2e --test durability \
  acknowledged_events_survive_kill_9 -- --nocapture
