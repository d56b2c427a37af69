#!/bin/sh
# Runs the alpaca CLI for arm64 under qemu-aarch64 and prints how many guest instructions it
# executed (cross/qemu-insn-plugin.c). Instruction counts do not depend on how loaded this
# machine is, so they compare code paths of the Pi's build where timing cannot.
#   cross/count-instructions.sh [--cpu cortex-a72|max] -- ALPACA ARGS…
# e.g. cross/count-instructions.sh -- bench -m model.gguf -p 8 -n 9 --threads 1 --reps 1 --warmup 0
# Prints the command's own output, then "instructions: N" on stderr. Needs gcc, qemu-user,
# g++-aarch64-linux-gnu (the addon is cross-built, or brought up to date) and Node for arm64 (fetched).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cpu=cortex-a72
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--cpu cortex-a72|max] -- ALPACA ARGS…" >&2; exit 2 ;;
  esac
done
for tool in gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install gcc qemu-user)" >&2; exit 2; }
done
plugin="$root/build/qemu-insn/libqemu-insn.so"
if [ ! -f "$plugin" ] || [ "$root/cross/qemu-insn-plugin.c" -nt "$plugin" ]; then
  mkdir -p "$(dirname "$plugin")"
  gcc -shared -fPIC -O2 -o "$plugin" "$root/cross/qemu-insn-plugin.c"
fi
# Built (incrementally: a few seconds when nothing changed) before every count, so that a count
# never runs an addon older than the kernels it is meant to measure.
addon=$("$root/cross/build-addon-arm64.sh")
node=$("$root/cross/node-arm64.sh")/bin/node
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
status=0
ALPACA_ADDON="$addon" qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -plugin "$plugin" \
  "$node" "$root/dist/daemon/cli.js" "$@" 2>"$out" || status=$?
grep -v '^qemu-insn: ' "$out" >&2 || true
sed -n 's/^qemu-insn: \([0-9]*\) instructions$/instructions: \1/p' "$out" >&2
exit $status
