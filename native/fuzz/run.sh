#!/usr/bin/env bash
# Builds and runs the fuzz harnesses, one after another. Each keeps a growing corpus in
# .fuzz/corpus/<target> (seeded from .fuzz/seeds/<target>); a crash is written to
# .fuzz/crash-<target>-* and ends the run with a non-zero status.
# Usage: native/fuzz/run.sh [seconds per target, default 600] [target ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${ALPACA_FUZZ_DIR:-$root/.fuzz}"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf spm bpe gbnf)
"$root/native/fuzz/build.sh" "${targets[@]}"
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  echo "fuzz_$t: $seconds s"
  # -rss_limit_mb: the 128k-token BPE vocabulary plus ASan's shadow need more than the default.
  "$out/fuzz_$t" "$out/corpus/$t" "$out/seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/crash-$t-" ${FUZZ_FLAGS:-} 2>&1 |
    grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written|INFO: Done)' || true
  test "${PIPESTATUS[0]}" -eq 0
done
