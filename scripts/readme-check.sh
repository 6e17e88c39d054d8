#!/usr/bin/env bash
# The README tried as a newcomer would, in a fresh clone of the committed
# tree (HEAD), with an empty auditcol cache, so the test command installs its
# Python venv from scratch:
#
#   1. the set-up block has exactly the two commands the README promises;
#   2. the first (`cargo run`) starts the collector on its embedded default,
#      the README's Python example (with the packages its `pip install`
#      names, in a new venv) sends an event, and the console line the README
#      shows comes out; SIGTERM stops it with exit status 0;
#   3. the second (`scripts/test.sh`) installs what the tests need and runs
#      the CLI tests (the whole suite runs in CI anyway);
#   4. `cargo install --locked --path crates/auditcol` puts `auditcol` on the
#      PATH, and every `auditcol validate`, `print-config` and `graph` command
#      of the README's shell blocks works as written.
#
#   scripts/readme-check.sh
#
# The clone is made in ~/.cache/auditcol/readme-check (or
# $AUDITCOL_README_CHECK_DIR), emptied first. Kept outside it: its cargo
# build directory (~/.cache/auditcol/target-readme-check, or
# $AUDITCOL_README_CHECK_TARGET: the dependencies stay built between runs;
# an empty one adds ~10 minutes of compiling on 2 cores) and Tansu (`tansu`
# on the PATH: building it takes 8-15 minutes). `cargo install` builds the
# debug profile (`--debug`) to reuse that build; the README's command builds
# the release one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# A build directory of its own, never the one other checkouts use: cargo
# tells a workspace's builds apart by paths relative to the workspace, so a
# clone sharing a build directory with another checkout of the same tree
# could leave test binaries that point into the clone (CARGO_MANIFEST_DIR)
# for the other checkout to run.
export CARGO_TARGET_DIR="${AUDITCOL_README_CHECK_TARGET:-$HOME/.cache/auditcol/target-readme-check}"
# A fixed place, emptied on each run.
WORK="${AUDITCOL_README_CHECK_DIR:-$HOME/.cache/auditcol/readme-check}"
rm -rf "$WORK" && mkdir -p "$WORK"
collector=""
cleanup() {
  if [ -n "$collector" ] && kill -0 "$collector" 2>/dev/null; then
    kill -KILL -- "-$collector" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "readme-check: FAILED: $*" >&2
  exit 1
}

git clone --quiet "$ROOT" "$WORK/auditcol"
cd "$WORK/auditcol"
export AUDITCOL_CACHE="$WORK/cache"

# 1. The set-up block: the first ```sh block of the README.
setup=$(awk '/^```sh$/ { inside = 1; next } inside && /^```/ { exit } inside' README.md)
[ "$(printf '%s\n' "$setup" | wc -l)" -eq 2 ] || fail "the set-up block does not have two commands:
$setup"
first=$(printf '%s\n' "$setup" | sed -n 1p | sed 's/[[:space:]]*#.*//')
second=$(printf '%s\n' "$setup" | sed -n 2p | sed 's/[[:space:]]*#.*//')
echo "==> README set-up commands: \`$first\` and \`$second\`"

# 2. The first command, in its own process group (as a terminal runs it).
echo "==> $first"
setsid bash -c "$first" >"$WORK/stdout" 2>"$WORK/stderr" &
collector=$!
for _ in $(seq 1 900); do
  grep -q "auditcol is running" "$WORK/stderr" && break
  kill -0 "$collector" 2>/dev/null || fail "\`$first\` exited:
$(tail -n 20 "$WORK/stderr")"
  sleep 1
done
grep -q "auditcol is running" "$WORK/stderr" || fail "\`$first\` did not start within 15 minutes"

packages=$(grep -o 'pip install [^`]*' README.md | head -n 1 | sed 's/^pip install //')
[ -n "$packages" ] || fail "the README names no packages to pip install"
echo "==> the README's Python example (pip install $packages)"
python3 -m venv "$WORK/py"
# shellcheck disable=SC2086 # a list of package names
"$WORK/py/bin/pip" install --quiet --disable-pip-version-check $packages
awk '/^```python$/ { inside = 1; next } inside && /^```/ { exit } inside' README.md >"$WORK/example.py"
"$WORK/py/bin/python" "$WORK/example.py"
want='flag:updated success actor: email=kyle@example.com payload: {"key":"dark-mode","enabled":true}'
for _ in $(seq 1 30); do
  grep -qF "$want" "$WORK/stdout" && break
  sleep 1
done
grep -qF "$want" "$WORK/stdout" || fail "the collector did not print the example's event:
$(cat "$WORK/stdout")"
echo "==> printed: $(grep -F "$want" "$WORK/stdout")"

kill -TERM -- "-$collector"
status=0
wait "$collector" || status=$?
collector=""
[ "$status" -eq 0 ] || fail "\`$first\` exited with status $status after SIGTERM:
$(tail -n 20 "$WORK/stderr")"
grep -q "auditcol stopped" "$WORK/stderr" || fail "no \"auditcol stopped\" line after SIGTERM"
echo "==> stopped on SIGTERM, exit status 0"

# 3. The second command, with an empty cache: it installs the Python venv.
echo "==> $second (the CLI tests, AUDITCOL_CACHE empty)"
bash -c "$second -E 'binary_id(auditcol-e2e::cli)'"
[ -x "$AUDITCOL_CACHE/venv/bin/python" ] || fail "\`$second\` did not install the Python venv"

# 4. The binary on the PATH, and the README's commands that end by themselves.
install=$(grep -m 1 -o '^cargo install [^#]*' README.md | sed 's/[[:space:]]*$//')
[ -n "$install" ] || fail "the README says no \`cargo install\`"
echo "==> $install --debug --root <tmp>"
bash -c "$install --debug --root '$WORK/root'" 2>&1 | tail -n 3
export PATH="$WORK/root/bin:$PATH"
[ "$(command -v auditcol)" = "$WORK/root/bin/auditcol" ] || fail "auditcol is not on the PATH"
commands=$(awk '/^```sh$/ { inside = 1; next } inside && /^```/ { inside = 0 } inside' README.md |
  sed 's/[[:space:]]*#.*//' | grep -E '^auditcol (validate|print-config|graph) ' || true)
[ -n "$commands" ] || fail "the README has no auditcol validate/print-config/graph command"
while IFS= read -r command; do
  echo "==> $command"
  bash -c "$command" >"$WORK/out" 2>&1 || fail "\`$command\` failed:
$(cat "$WORK/out")"
done <<<"$commands"
echo "==> the README works in a fresh clone"
