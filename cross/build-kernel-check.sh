#!/bin/sh
# Builds native/tools/kernel_check, the standalone comparison of every SIMD kernel set with the
# scalar references.
#   cross/build-kernel-check.sh aarch64   cross-compiles for arm64 (Debian g++-aarch64-linux-gnu),
#                                         static, so qemu-aarch64 runs it without an arm64 sysroot
#   cross/build-kernel-check.sh native    builds for this machine (x86-64 or arm64)
# Prints the path of the program. Flags mirror binding.gyp: the baseline for the architecture
# everywhere, the ISA flags only on the file of that ISA.
set -eu
target=${1:-aarch64}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/kernel-check/$target"
mkdir -p "$out"

common="native/tools/kernel_check.cc native/tools/kernel_check_f16.cc native/tools/kernel_check_batch.cc native/gguf/tensor_types.cc native/kernels/scalar.cc native/kernels/kernel_table.cc
        native/kernels/cpu_features.cc native/kernels/thread_pool.cc native/kernels/matmul.cc"
flags="-std=c++17 -O3 -Wall -Wextra -Werror -Wno-psabi -pthread -Inative"

. "$root/native/kernels/isa.sh"

build_arm64() {  # $1: compiler, $2: link flags
  objects=$(kernel_isa_objects aarch64 "$1" "$flags" "$out") || exit 1
  # shellcheck disable=SC2086
  "$1" $flags -mcpu=cortex-a72 $2 $common $objects -o "$out/kernel_check"
}

cd "$root"
case "$target" in
  aarch64)
    command -v aarch64-linux-gnu-g++ >/dev/null || { echo "aarch64-linux-gnu-g++ not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 2; }
    build_arm64 aarch64-linux-gnu-g++ -static ;;
  native)
    case "$(uname -m)" in
      x86_64)
        objects=$(kernel_isa_objects x86_64 g++ "$flags" "$out") || exit 1
        # shellcheck disable=SC2086
        g++ $flags $common $objects -o "$out/kernel_check" ;;
      aarch64) build_arm64 g++ "" ;;
      *) g++ $flags $common -o "$out/kernel_check" ;;
    esac ;;
  *) echo "usage: $0 aarch64|native" >&2; exit 2 ;;
esac
echo "$out/kernel_check"
