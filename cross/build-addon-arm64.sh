#!/bin/sh
# Cross-builds the native addon for linux-arm64 (the Raspberry Pi 4 and 5) on an x86-64 machine
# and stores it as prebuilds/linux-arm64/alpaca.node, where daemon/engine/native.ts looks for it.
#
# Needs Debian's g++-aarch64-linux-gnu. Builds against the headers of Node for arm64 (fetched by
# cross/node-arm64.sh), in build-arm64/ so that the x86-64 build in build/ is left alone.
# ISA flags come from binding.gyp (baseline ARMv8.0 everywhere, +dotprod only on the file of the
# Pi 5 kernels); here we only tune for the Pi 4's Cortex-A72, which changes scheduling, never the
# instructions allowed, so the result still runs on any ARMv8.0 core.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ aarch64-linux-gnu-ar; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 2; }
done
nodedir=$(cross/node-arm64.sh)

# node-gyp builds in <dir>/build next to the binding.gyp it is given: a copy of binding.gyp in its
# own folder, with native/ linked beside it so the relative source paths still resolve.
stage="$root/build-arm64"
mkdir -p "$stage"
# make rebuilds only what changed; gyp must run again when binding.gyp did (new sources, flags).
step=build
if ! cmp -s binding.gyp "$stage/binding.gyp" || [ ! -f "$stage/build/Makefile" ]; then step=rebuild; fi
cp binding.gyp "$stage/binding.gyp"
ln -sfn ../native "$stage/native"

# ~/.npmrc may set nodedir (pointing at the x86-64 headers); npm gives the environment precedence
# over user config, and node-gyp ignores --nodedir when npm_config_nodedir is set, so this is the
# one way that always picks the arm64 headers.
(
  cd "$stage"
  export npm_config_nodedir="$nodedir"
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
  export CFLAGS="-mtune=cortex-a72" CXXFLAGS="-mtune=cortex-a72"
  "$root/node_modules/.bin/node-gyp" "$step" --arch=arm64 --jobs="${JOBS:-max}" >"$stage/build.log" 2>&1 || {
    tail -n 40 "$stage/build.log" >&2
    echo "arm64 addon build failed; the whole log is $stage/build.log" >&2
    exit 1
  }
)

out="$root/prebuilds/linux-arm64"
mkdir -p "$out"
cp "$stage/build/Release/alpaca.node" "$out/alpaca.node.tmp"
mv "$out/alpaca.node.tmp" "$out/alpaca.node"
echo "$out/alpaca.node"
