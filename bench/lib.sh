# Shell functions shared by the benchmark scripts (sourced, not run).

# The script's header comment (from line 2 to `set -euo`), as its --help.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# The command line every benchmark script takes: --no-build (sets BUILD=0;
# BUILD defaults to $BENCH_BUILD, else 1) and --help.
bench_args() {
  BUILD=${BENCH_BUILD:-1}
  local arg
  for arg in "$@"; do
    case "$arg" in
      --no-build) BUILD=0 ;;
      -h | --help) usage; exit 0 ;;
      *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
  done
}

# CPU time (utime + stime, all threads) of a process, in clock ticks.
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) } # the fields after "(comm) "; comm may contain spaces
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

# CPU time the whole machine spent busy (all CPUs, not idle or iowait), in
# clock ticks: with the collector's and the load generator's share taken
# out, what else ran during a measurement (other builds, ...).
machine_busy_ticks() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  echo $((user + nice + system + irq + softirq + steal))
}
