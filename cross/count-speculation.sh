#!/bin/sh
# Instructions per answer token with and without speculation, counted under qemu-aarch64 (the
# Pi 4's core by default): `alpaca bench --speculate` run three times through
# cross/count-instructions.sh, once prefill only (--speculate-runs none), once decoding the
# answer token by token (plain) and once with speculation (speculative). A run minus the
# prefill-only run is what decoding the answer cost; it is divided by the answer tokens decoded
# (every token after the first, which comes from the prompt's logits), by the engine calls, and
# for speculation also by the proposed tokens kept.
#   cross/count-speculation.sh [--cpu cortex-a72|max] [--entities N] MODEL
# One thread (the count of several threads is exact only for one), one repetition. With the
# shared fixture qwen2-tiny-q4_0.gguf (Qwen2 architecture, Q4_0 matrices) and 4 entities each
# run takes about a minute (the whole script 3 minutes on a loaded machine); a TinyLlama-sized
# model takes hours.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cpu=cortex-a72
entities=4
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --entities) entities="$2"; shift 2 ;;
    -*) echo "usage: $0 [--cpu cortex-a72|max] [--entities N] MODEL" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--cpu cortex-a72|max] [--entities N] MODEL" >&2; exit 2; }
model=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# $1: none|plain|speculative -> $work/$1.json (the bench's result), $work/$1.count (instructions)
count() {
  "$root/cross/count-instructions.sh" --cpu "$cpu" -- bench -m "$model" --speculate --entities "$entities" \
    --speculate-runs "$1" --reps 1 --threads 1 --json >"$work/$1.json" 2>"$work/$1.err" ||
    { cat "$work/$1.err" >&2; exit 1; }
  sed -n 's/^instructions: \([0-9]*\)$/\1/p' "$work/$1.err" >"$work/$1.count"
  echo "$1: $(cat "$work/$1.count") instructions" >&2
}
count none
count plain
count speculative

node - "$work" "$cpu" "$model" <<'EOF'
const fs = require("fs");
const [work, cpu, model] = process.argv.slice(2);
const read = (run) => ({ ...JSON.parse(fs.readFileSync(`${work}/${run}.json`, "utf8")), count: Number(fs.readFileSync(`${work}/${run}.count`, "utf8")) });
const none = read("none"), plain = read("plain"), spec = read("speculative");
const tokens = plain.answerTokens - 1;
const m = (x) => (x / 1e6).toFixed(1).padStart(9);
const plainCost = plain.count - none.count, specCost = spec.count - none.count;
console.log(`instructions under qemu-aarch64 -cpu ${cpu}, ${model}, 1 thread; a ${none.promptTokens}-token prompt, ${tokens} answer tokens decoded`);
console.log(`prefill only (and start-up)   ${m(none.count)} M`);
console.log(`without speculation           ${m(plainCost)} M decoding: ${m(plainCost / tokens)} M per answer token, ${plain.plain.passes} engine calls`);
console.log(`with speculation              ${m(specCost)} M decoding: ${m(specCost / tokens)} M per answer token, ${spec.speculative.passes} engine calls,` +
  ` ${m(specCost / spec.speculative.accepted)} M per kept proposal (${spec.speculative.accepted} of ${spec.speculative.drafted} kept)`);
console.log(`with speculation ${(specCost / plainCost).toFixed(2)}× the instructions per answer token; ${(tokens / spec.speculative.passes).toFixed(2)} answer tokens per engine call`);
EOF
