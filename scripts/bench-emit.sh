# Sourced by the bench scripts: `emit METRIC SERIES VALUE [X]` appends one measurement to the
# results file `hub-bench report` reads (bench/src/results.rs), when BENCH_RESULTS names it;
# without it the scripts only print their tables.
emit() {
  [ -n "${BENCH_RESULTS:-}" ] || return 0
  local x=
  [ -z "${4:-}" ] || x=",\"x\":$4"
  printf '{"metric":"%s","series":"%s","value":%s%s}\n' "$1" "$2" "$3" "$x" >> "$BENCH_RESULTS"
}
