# What the shell benchmarks share (sourced, from the repository's root).

# Sets BIN to the build to measure: BENCH_BIN when given (an earlier commit's build, to
# compare within the hour), otherwise this checkout's, built now in release.
guichet_binary() {
  if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
  else
    cargo build --release -q -p guichet
    BIN=target/release/guichet
  fi
}

# A fresh working directory, removed on exit (with whatever `cleanup` also does).
bench_workdir() {
  WORK=$(mktemp -d)
  trap 'cleanup; rm -rf "$WORK"' EXIT
}
cleanup() { :; }
