#!/bin/sh
# Instructions per Q4_0 block in the inner loop of each arm64 Q4_0 kernel, read from the
# disassembly of the cross-built kernel objects (cross/build-kernel-check.sh aarch64 makes them).
# The main loop of each kernel is the span from the target of its first backward conditional
# branch to that branch; it handles four blocks, so the count is divided by four. Tail loops
# (n not a multiple of 128) are not counted. Prints one line per kernel, then the opcode tally.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build/kernel-check/aarch64"
[ -f "$dir/kernels_neon.o" ] || "$root/cross/build-kernel-check.sh" aarch64 >/dev/null
objdump=aarch64-linux-gnu-objdump
command -v $objdump >/dev/null || { echo "$objdump not found (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 2; }

count() {  # $1: object file, $2: function name, $3: label
  $objdump -d --no-show-raw-insn -C "$1" | awk -v fn="::$2(" -v label="$3" '
    function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
    /^[0-9a-f]+ </ { inside = index($0, fn) > 0; next }
    !inside { next }
    /^ +[0-9a-f]+:/ {
      addr = hex(substr($1, 1, length($1) - 1)); op = $2
      n++; addrs[n] = addr; ops[n] = op
      if ((op ~ /^b\./ || op ~ /^(cbz|cbnz|tbz|tbnz)$/) && !done) {
        target = hex($3)
        if (target < addr) {
          total = 0; tally = ""
          for (i = 1; i <= n; i++) if (addrs[i] >= target) { total++; seen[ops[i]]++ }
          for (o in seen) tally = tally " " o "=" seen[o]
          printf "%-28s %3d instructions per 4 blocks = %.1f per block\n   %s\n", label, total, total / 4, tally
          done = 1
        }
      }
    }'
}
count "$dir/kernels_neon.o" dotQ4_0Q8_0Neon "A72 (16-bit MLA)"
count "$dir/kernels_neon.o" dotQ4_0Q8_0NeonSdotEmulated "sdot emulated (vmull+vpadal)"
count "$dir/kernels_neon_dotprod.o" dotQ4_0Q8_0NeonDotprod "A76 (sdot)"
