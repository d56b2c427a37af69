#!/bin/sh
# Instructions per unit of work of the arm64 kernels, counted under qemu-aarch64 with the
# instruction-counting plugin (cross/qemu-insn-plugin.c): cross/kernel-count.cc runs a kernel of
# the table at two repetition counts and the difference is divided by the work in between, so
# set-up and start-up cancel out. For each type:
#   dot    the one-row dot product, per 256 weights (a K super-block; eight Q4_0 blocks)
#   rows   the decode kernel, per row and 256 weights (and per row and block of 32 for those)
#   panel  per 16 rows × block × activation row (the added cost of one more activation row),
#          and what rearranging the panel costs per 16 rows × block, once per batch
#   llama.cpp's ggml_vec_dot_<type>_q8_* per 256 weights, built from its published source with
#          the same cross compiler for armv8-a without dot product, -O3 -mtune=cortex-a72
#          (--llama-cpp DIR: a llama.cpp source tree; by default the one node-llama-cpp bundles,
#          when `npm run bench:peer` has installed it into .bench/peer)
# Rows of 4096 columns, panels of 16 and 32 activation rows.
#   cross/count-kernels.sh [--cpu cortex-a72|max] [--set NAME] [--llama-cpp DIR] [TYPE ...]
# --cpu max with --set neon-dotprod counts the Pi 5's kernels. Needs g++-aarch64-linux-gnu,
# qemu-user and gcc.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cpu=cortex-a72
set_name=neon
llama=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --set) set_name="$2"; shift 2 ;;
    --llama-cpp) llama="$2"; shift 2 ;;
    -*) echo "usage: $0 [--cpu cortex-a72|max] [--set NAME] [--llama-cpp DIR] [TYPE ...]" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- q4_0 q4_1 q8_0 q2_K q3_K q4_K q5_K q6_K
for tool in gcc qemu-aarch64 aarch64-linux-gnu-g++ aarch64-linux-gnu-gcc git; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install gcc git qemu-user g++-aarch64-linux-gnu)" >&2; exit 2; }
done

out="$root/build/kernel-count"
mkdir -p "$out"
plugin="$root/build/qemu-insn/libqemu-insn.so"
if [ ! -f "$plugin" ] || [ "$root/cross/qemu-insn-plugin.c" -nt "$plugin" ]; then
  mkdir -p "$(dirname "$plugin")"
  gcc -shared -fPIC -O2 -o "$plugin" "$root/cross/qemu-insn-plugin.c"
fi

# llama.cpp's source: the tree given, or node-llama-cpp's bundled copy (a git bundle).
bundle="$root/.bench/peer/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [ -z "$llama" ] && [ -f "$bundle" ]; then
  llama="$out/llama.cpp"
  [ -d "$llama/ggml" ] || git clone -q "$bundle" "$llama" 2>/dev/null
fi
quants="$llama/ggml/src/ggml-cpu/arch/arm/quants.c"
extra=""
if [ -n "$llama" ] && [ -f "$quants" ]; then
  aarch64-linux-gnu-gcc -O3 -march=armv8-a -mtune=cortex-a72 -std=gnu11 -ffunction-sections -fdata-sections \
    -I"$llama/ggml/include" -I"$llama/ggml/src" -I"$llama/ggml/src/ggml-cpu" -c "$quants" -o "$out/ggml-arm-quants.o"
  extra="-DALPACA_LLAMA_CPP $out/ggml-arm-quants.o -Wl,--gc-sections"
  echo "llama.cpp: $quants"
else
  echo "llama.cpp: not counted (no source tree; --llama-cpp DIR, or npm run bench:peer to install node-llama-cpp)"
fi

cd "$root"
. "$root/native/kernels/isa.sh"
flags="-std=c++17 -O3 -Wall -Wextra -Werror -Wno-psabi -Inative"
objects=$(kernel_isa_objects aarch64 aarch64-linux-gnu-g++ "$flags" "$out") || exit 1
# shellcheck disable=SC2086
aarch64-linux-gnu-g++ $flags -mcpu=cortex-a72 -static cross/kernel-count.cc native/gguf/tensor_types.cc \
  native/kernels/scalar.cc native/kernels/kernel_table.cc native/kernels/cpu_features.cc $objects $extra \
  -o "$out/kernel-count"

# $@: kernel-count arguments -> instructions of that run
run() {
  counted=$(qemu-aarch64 -cpu "$cpu" -plugin "$plugin" "$out/kernel-count" "$@" 2>&1 >/dev/null) || return 1
  echo "$counted" | sed -n 's/^qemu-insn: \([0-9]*\) instructions$/\1/p'
}
# instructions of one call: SET TYPE PATH [N NA]
per_call() {
  set_=$1 type_=$2 path_=$3; shift 3
  a=$(run "$set_" "$type_" "$path_" 2 "$@") && b=$(run "$set_" "$type_" "$path_" 12 "$@") || return 1
  [ -n "$a" ] && [ -n "$b" ] || return 1
  echo $(( (b - a) / 10 ))
}
# $1 / $2 with one decimal
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

n=4096
echo "instructions under qemu-aarch64 -cpu $cpu, set $set_name, rows of $n columns"
for type in "$@"; do
  case "$type" in
    q4_0|q4_1|q8_0) block=32 ;;
    *) block=256 ;;
  esac
  nb=$((n / block))
  line="$type:"
  if c=$(per_call "$set_name" "$type" dot $n 2>/dev/null); then line="$line dot $(ratio "$c" $((n / 256)))"; fi
  rows=$(qemu-aarch64 -cpu "$cpu" "$out/kernel-count" "$set_name" "$type" rows 0 $n 2>/dev/null | sed -n 's/^rows //p')
  if [ -n "$rows" ] && c=$(per_call "$set_name" "$type" rows $n 2>/dev/null); then
    line="$line | rows ($rows at once) $(ratio "$c" $((n / 256 * rows)))"
    [ $block = 32 ] && line="$line ($(ratio "$c" $((nb * rows))) per block)"
  fi
  if c16=$(per_call "$set_name" "$type" panel $n 16 2>/dev/null) && c32=$(per_call "$set_name" "$type" panel $n 32 2>/dev/null); then
    marginal=$(( (c32 - c16) / 16 ))
    line="$line | panel $(ratio "$marginal" $nb) per 16 rows x block x activation row, $(ratio $((c16 - 16 * marginal)) $nb) per 16 rows x block to rearrange"
  fi
  if [ -n "$extra" ] && c=$(per_call llama.cpp "$type" dot $n 2>/dev/null); then line="$line | llama.cpp $(ratio "$c" $((n / 256)))"; fi
  echo "$line"
done
