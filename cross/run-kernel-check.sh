#!/bin/sh
# Runs the arm64 kernel_check under qemu user-mode emulation, once per Raspberry Pi CPU:
#   -cpu cortex-a72  ARMv8.0, no SDOT (Pi 4): the NEON set runs, and a stray SDOT in any code
#                    the A72 may execute faults with SIGILL, so a pass proves that path clean
#   -cpu max         every extension qemu knows, dotprod included (stands in for the Pi 5's A76)
# Each run must print "N passed, 0 failed". Usage: cross/run-kernel-check.sh [cortex-a72|max]...
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
program="$root/build/kernel-check/aarch64/kernel_check"
[ -x "$program" ] || "$root/cross/build-kernel-check.sh" aarch64 >/dev/null
command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 2; }
[ $# -gt 0 ] || set -- cortex-a72 max
status=0
for cpu in "$@"; do
  echo "== qemu-aarch64 -cpu $cpu"
  qemu-aarch64 -cpu "$cpu" "$program" || status=1
done
exit $status
