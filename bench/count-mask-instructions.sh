#!/bin/sh
# Instructions the token mask takes on a Cortex-A72 (the Pi 4), counted under qemu-aarch64 by a
# plugin (cross/qemu-insn-plugin.c, as cross/count-instructions.sh uses it) rather than timed: exact, and the same on a busy machine.
#   bench/count-mask-instructions.sh GRAMMAR_BENCH_AARCH64 VOCAB.gguf GRAMMAR.gbnf TEXT
# grammar_bench runs four times: the full mask at every token once and three times (the difference
# is two full masks per position), the served mask (cache and forcing, as the sampler pays) and
# nothing (the walk alone). Prints one JSON object.
set -eu
bin=$1; vocab=$2; grammar=$3; text=$4
root=$(cd "$(dirname "$0")/.." && pwd)
plugin="$root/build/qemu-insn/libqemu-insn.so"
mkdir -p "$root/build/qemu-insn"
[ "$plugin" -nt "$root/cross/qemu-insn-plugin.c" ] || cc -shared -fPIC -O2 -Wall -o "$plugin" "$root/cross/qemu-insn-plugin.c"
count() {  # reps mode -> instructions; the program's JSON goes to $out
  qemu-aarch64 -cpu cortex-a72 -plugin "$plugin" "$bin" "$vocab" "$grammar" "$text" "$1" "$2" 2>"$root/build/insn-count.err" >"$root/build/insn-count.out" ||
    { cat "$root/build/insn-count.err" >&2; exit 1; }
  sed -n 's/^qemu-insn: \([0-9]*\) instructions$/\1/p' "$root/build/insn-count.err"
}
once=$(count 1 full)
tokens=$(sed -n 's/.*"tokens": \([0-9]*\).*/\1/p' "$root/build/insn-count.out")
thrice=$(count 3 full)
served=$(count 1 served)
none=$(count 1 none)
echo "{\"tokens\": $tokens, \"instructionsPerMask\": $(( (thrice - once) / (2 * (tokens + 1)) )), \"servedInstructionsPerToken\": $(( (served - none) / (tokens + 1) ))}"
