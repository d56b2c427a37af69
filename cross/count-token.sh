#!/bin/sh
# Instructions per decoded token of a model on the Pi's arm64 build under qemu-aarch64: one
# thread, `alpaca bench -p 8` with `-n 9` minus the same with `-n 1`, divided by 8. Everything
# but the eight extra decode steps (loading, the prompt, the first token) cancels out.
#   cross/count-token.sh [--cpu cortex-a72|max] [--prompt-tokens P] MODEL.gguf
# With --prompt-tokens it prints instructions per prompt token instead: `-p 2P -n 1` minus
# `-p P -n 1`, divided by P (one batch each).
# Prints both totals and the quotient; needs what cross/count-instructions.sh needs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cpu=cortex-a72
prompt=0
while [ $# -gt 1 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --prompt-tokens) prompt="$2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--cpu cortex-a72|max] [--prompt-tokens P] MODEL.gguf" >&2; exit 2; }
model=$1

# $1: prompt tokens, $2: decoded tokens -> the instruction count of that bench
count() {
  "$root/cross/count-instructions.sh" --cpu "$cpu" -- bench -m "$model" -p "$1" -n "$2" \
    --threads 1 --reps 1 --warmup 0 --json 2>&1 >/dev/null | sed -n 's/^instructions: //p'
}

if [ "$prompt" -gt 0 ]; then
  a=$(count "$prompt" 1)
  b=$(count $((2 * prompt)) 1)
  echo "-p $prompt -n 1: $a instructions"
  echo "-p $((2 * prompt)) -n 1: $b instructions"
  echo "per prompt token: $(( (b - a) / prompt )) instructions ($cpu)"
else
  a=$(count 8 1)
  b=$(count 8 9)
  echo "-p 8 -n 1: $a instructions"
  echo "-p 8 -n 9: $b instructions"
  echo "per decoded token: $(( (b - a) / 8 )) instructions ($cpu)"
fi
