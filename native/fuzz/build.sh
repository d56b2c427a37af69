#!/usr/bin/env bash
# Builds the libFuzzer harnesses with Debian's clang (-fsanitize=fuzzer,address,undefined) into
# build/fuzz/, and writes their seed corpora from ../shared into build/fuzz/seeds/ (generated
# here, never committed). Usage: native/fuzz/build.sh [target ...]  (default: gguf spm bpe gbnf)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${ALPACA_FUZZ_DIR:-$root/.fuzz}"
shared="${ALPACA_SHARED:-$(cd "$root/.." && pwd)/shared}"
CXX="${CXX_FUZZ:-clang++}"
targets=("${@:-gguf}")
[ $# -eq 0 ] && targets=(gguf spm bpe gbnf)

command -v "$CXX" >/dev/null || { echo "build.sh: $CXX not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$out/obj"

flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -DALPACA_SHARED="\"$shared\"")
# The engine sources the reader, the model binding and the tokenizers need; no N-API.
sources=(gguf/mapped_file gguf/mapping_guard gguf/gguf gguf/tensor_types kernels/scalar kernels/kernel_table kernels/cpu_features
         model/architecture model/arch_llama model/arch_qwen2 model/arch_qwen3 model/model
         tokenizer/vocab tokenizer/tokenizer_spm tokenizer/tokenizer_bpe tokenizer/unicode_tables
         sampler/grammar sampler/grammar_matcher sampler/token_mask)
# The kernel sources with ISA flags of their own (native/kernels/isa.sh).
. "$root/native/kernels/isa.sh"

objects=()
compile() {  # name, extra flags...
  local name="$1"; shift
  local obj="$out/obj/${name//\//_}.o"
  if [ ! -f "$obj" ] || [ "$root/native/$name.cc" -nt "$obj" ] || [ -n "$(find "$root/native" -name '*.h' -newer "$obj")" ]; then
    "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link "$@" -c "$root/native/$name.cc" -o "$obj"
  fi
  objects+=("$obj")
}
for s in "${sources[@]}"; do compile "$s"; done
while read -r src isaFlags; do
  name="${src#native/}"
  # shellcheck disable=SC2086
  compile "${name%.cc}" $isaFlags
done < <(kernel_isa_sources "$(uname -m)")

for t in "${targets[@]}"; do
  "$CXX" "${flags[@]}" -fsanitize=fuzzer "$root/native/fuzz/fuzz_$t.cc" "${objects[@]}" -o "$out/fuzz_$t"
done

node "$root/native/fuzz/make-seeds.mjs" "$shared" "$out/seeds"
echo "built: ${targets[*]/#/$out/fuzz_}"
