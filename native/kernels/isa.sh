# The kernel sources compiled with flags of their own, one instruction-set level each, for the
# scripts that build the engine without node-gyp (binding.gyp lists the same files and flags).
#   . native/kernels/isa.sh
#   kernel_isa_sources x86_64|aarch64     prints "<source> <flags...>", one line per source
# Everything else (scalar.cc, kernel_table.cc, cpu_features.cc, ...) is baseline code and takes
# the caller's flags; see the rule in kernel_table.h.
kernel_isa_sources() {
  avx2="-mavx2 -mfma -mf16c"
  vnni="$avx2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
  case "$1" in
    x86_64)
      echo "native/kernels/x86/avx2.cc $avx2"
      echo "native/kernels/x86/avx512_vnni.cc $vnni"
      echo "native/kernels/x86/avx512_vbmi.cc $vnni -mavx512vbmi" ;;
    aarch64)
      echo "native/kernels/arm/neon.cc -mcpu=cortex-a72"
      # +dotprod on this file alone; -mcpu would fight -march, so tune for the A76 it targets.
      echo "native/kernels/arm/neon_dotprod.cc -march=armv8.2-a+dotprod -mtune=cortex-a76" ;;
  esac
}

# Compiles kernel_isa_sources for $1 with compiler $2 and extra flags $3 into directory $4;
# prints the object files.
kernel_isa_objects() {
  kernel_isa_sources "$1" | while read -r src flags; do
    obj="$4/$(basename "$src" .cc).o"
    # shellcheck disable=SC2086
    "$2" $3 $flags -c "$src" -o "$obj" || exit 1
    echo "$obj"
  done
}
