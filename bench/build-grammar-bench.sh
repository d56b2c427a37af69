#!/bin/sh
# Builds native/tools/grammar_bench (the token mask's cost per token, see that file).
#   bench/build-grammar-bench.sh native    for this machine
#   bench/build-grammar-bench.sh aarch64   cross-compiled for the Pi 4 (static, -mcpu=cortex-a72),
#                                          for qemu-aarch64
# Prints the path of the program. Objects are kept in build/grammar-bench/<target>/.
set -eu
target=${1:-native}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/grammar-bench/$target"
mkdir -p "$out"
cd "$root"
sources="native/tools/grammar_bench.cc native/sampler/grammar.cc native/sampler/grammar_matcher.cc
  native/sampler/token_mask.cc native/tokenizer/vocab.cc native/tokenizer/tokenizer_spm.cc
  native/tokenizer/tokenizer_bpe.cc native/tokenizer/unicode_tables.cc native/gguf/gguf.cc
  native/gguf/mapped_file.cc native/gguf/mapping_guard.cc native/gguf/tensor_types.cc
  native/kernels/scalar.cc native/kernels/kernel_table.cc native/kernels/cpu_features.cc"
flags="-std=c++17 -O3 -Wall -Wextra -Wno-unused-parameter -Wno-psabi -pthread -Inative"
. "$root/native/kernels/isa.sh"  # the kernel sources with ISA flags of their own
case "$target" in
  native)
    cxx=g++
    isa=$(kernel_isa_objects "$(uname -m)" $cxx "$flags" "$out") || exit 1
    # shellcheck disable=SC2086
    $cxx $flags $sources $isa -o "$out/grammar_bench" ;;
  aarch64)
    cxx=aarch64-linux-gnu-g++
    command -v $cxx >/dev/null || { echo "$cxx not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 2; }
    isa=$(kernel_isa_objects aarch64 $cxx "$flags" "$out") || exit 1
    # shellcheck disable=SC2086
    $cxx $flags -mcpu=cortex-a72 -static $sources $isa -o "$out/grammar_bench" ;;
  *) echo "usage: $0 native|aarch64" >&2; exit 2 ;;
esac
echo "$out/grammar_bench"
