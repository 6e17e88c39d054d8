# Shell functions shared by the benchmark scripts (sourced, not run).

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
