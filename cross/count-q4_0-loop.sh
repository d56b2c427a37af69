#!/bin/sh
# Instructions in the inner loop of each arm64 Q4_0 kernel, read from the disassembly of the
# cross-built kernel objects (cross/build-kernel-check.sh aarch64 makes them), and the same per
# unit of work: 16 weight rows × 1 block × 1 activation row, the panel's unit.
#  - one-row dot products: the main loop is the span from the target of the function's first
#    backward conditional branch to that branch; it handles four blocks of one row, so the count
#    is divided by four (per block) and multiplied by sixteen (per unit). Tail loops (n not a
#    multiple of 128) are not counted.
#  - decode kernels (eight rows against one activation row): the main loop is the widest backward
#    branch; it handles four blocks of eight rows, so the count is multiplied by 16/32.
#  - panel kernels: the main loop is the widest backward conditional branch before the first
#    `ret` (code placed after it, such as the prefetch of the next panel, is not counted; nor is
#    the unpacking, once per panel). The SDOT kernel's loop is one block of four rows against
#    four activation rows, the A72 one's one block of sixteen rows against one: both one unit.
# Prints one line per kernel, then the opcode tally.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build/kernel-check/aarch64"
[ -f "$dir/neon.o" ] || "$root/cross/build-kernel-check.sh" aarch64 >/dev/null
objdump=aarch64-linux-gnu-objdump
command -v $objdump >/dev/null || { echo "$objdump not found (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 2; }

# $1: object file, $2: function name up to its "(", $3: label, $4: first|widest,
# $5: loop instructions per unit = count * $5 / $6
count() {
  $objdump -d --no-show-raw-insn -C "$1" | awk -v fn="::$2(" -v label="$3" -v mode="$4" -v mul="$5" -v div="$6" '
    function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
    /^[0-9a-f]+ </ { inside = index($0, fn) > 0; next }
    !inside || returned { next }
    /^ +[0-9a-f]+:/ {
      addr = hex(substr($1, 1, length($1) - 1)); op = $2
      n++; addrs[n] = addr; ops[n] = op
      if (op == "ret") returned = 1
      target = -1
      if (op ~ /^b\./) target = hex($3)
      else if (op ~ /^(cbz|cbnz)$/) target = hex($4)
      else if (op ~ /^(tbz|tbnz)$/) target = hex($5)
      if (target < 0 || target >= addr || found) next
      if (mode == "first") { lo = target; hi = addr; found = 1 }
      else if (addr - target > hi - lo) { lo = target; hi = addr }
    }
    END {
      total = 0; tally = ""
      for (i = 1; i <= n; i++) if (addrs[i] >= lo && addrs[i] <= hi) { total++; seen[ops[i]]++ }
      for (o in seen) tally = tally " " o "=" seen[o]
      printf "%-34s %3d in the loop = %5.1f per 16 rows x block x activation row\n   %s\n", label, total, total * mul / div, tally
    }'
}
count "$dir/neon.o" dotQ4_0Q8_0Neon "A72 one row (16-bit MLA)" first 16 4
count "$dir/neon.o" dotQ4_0Q8_0NeonSdotEmulated "sdot emulated (vmull+vpadal)" first 16 4
count "$dir/neon_dotprod.o" dotQ4_0Q8_0NeonDotprod "A76 one row (sdot)" first 16 4
count "$dir/neon.o" "dotRowsNibbles<kernels::(anonymous namespace)::MullAccumulate16, kernels::(anonymous namespace)::neon::RowsQ4_0, 8>" \
  "A72 decode (8 rows x 4 blocks)" widest 16 32
count "$dir/neon_dotprod.o" "dotRowsNibbles<kernels::(anonymous namespace)::Sdot, kernels::(anonymous namespace)::neon::RowsQ4_0, 8>" \
  "A76 decode (8 rows x 4 blocks)" widest 16 32
count "$dir/neon.o" "panelRow<kernels::(anonymous namespace)::neon::Panel32Q4_0>" "A72 panel (16 rows x 1)" widest 1 1
count "$dir/neon_dotprod.o" "quadRows<kernels::(anonymous namespace)::neon::Panel32Q4_0, 4, true>" "A76 panel from scratch (4 x 4)" widest 1 1
count "$dir/neon_dotprod.o" "quadRows<kernels::(anonymous namespace)::neon::Panel32Q4_0, 4, false>" "A76 panel on the way (4 x 4)" widest 1 1
count "$dir/neon_dotprod.o" "quadRows<kernels::(anonymous namespace)::neon::Panel32Q4_0, 1, true>" "A76 panel, last row (4 x 1)" widest 4 1
