#!/bin/sh
# Packs a release tarball that installs on a machine with nothing but systemd:
#   release/alpaca-<version>-linux-<arch>.tar.gz  holding one folder alpaca-<version>-linux-<arch>/ with
#     dist/           the compiled JavaScript (no tests, no source maps)
#     node_modules/   production dependencies only (npm ci --omit=dev)
#     prebuilds/linux-<arch>/alpaca.node   the addon (cross-built for arm64), stripped
#     node/           Node for <arch> (Raspberry Pi OS and Debian 12 ship Node 18; alpaca needs 20)
#     bin/alpaca      starts dist/daemon/cli.js with that Node
#     systemd/        the unit, install.sh, the example config, the README on memory settings
#     docs/           the documentation the config file and the README point to
#
#   cross/pack.sh                 linux-arm64 (npm run pack:arm64): on x86-64 cross-builds the addon
#                                 (or brings it up to date); on an arm64 machine (a Pi) takes npm ci's
#                                 build/Release
#   cross/pack.sh --arch x64      linux-x64 from build/Release (the tests install this one)
#   --no-node                     leave Node out (bin/alpaca then uses the one on the PATH)
#   --out DIR                     where the tarball goes (default release/)
# Prints the tarball's path.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

arch=arm64
bundle_node=yes
out="$root/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --no-node) bundle_node=no; shift ;;
    --out) mkdir -p "$2"; out=$(cd "$2" && pwd); shift 2 ;;
    *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

version=$(node -p 'require("./package.json").version')
name="alpaca-$version-linux-$arch"
stage="$out/stage/$name"

# ─── the pieces that depend on the architecture ────────────────────────────────────────────────
case "$arch" in
  arm64)
    if [ "$(uname -m)" = aarch64 ]; then
      # Packing on the Pi itself: npm ci compiled the addon for this machine.
      addon="$root/build/Release/alpaca.node"
      [ -f "$addon" ] || npx --no-install node-gyp rebuild >/dev/null
      strip=strip
    else
      # Always through the build: make brings a stale addon up to date and skips a current one.
      addon=$(cross/build-addon-arm64.sh | tail -n 1)
      strip=aarch64-linux-gnu-strip
    fi
    nodedir=""
    [ "$bundle_node" = no ] || nodedir=$(cross/node-arm64.sh) ;;
  x64)
    [ "$(uname -m)" = x86_64 ] || { echo "pack.sh: --arch x64 packs this machine's build; this is $(uname -m)" >&2; exit 2; }
    addon="$root/build/Release/alpaca.node"
    [ -f "$addon" ] || npx --no-install node-gyp rebuild >/dev/null
    strip=strip
    nodedir=""
    [ "$bundle_node" = no ] || nodedir=$(dirname "$(dirname "$(command -v node)")") ;;
  *) echo "pack.sh: --arch must be arm64 or x64" >&2; exit 2 ;;
esac
[ -f dist/daemon/cli.js ] || npx --no-install tsc -p tsconfig.json

# ─── staging ────────────────────────────────────────────────────────────────────────────────
rm -rf "$stage"
mkdir -p "$stage/dist" "$stage/bin" "$stage/systemd" "$stage/prebuilds/linux-$arch"

cp package.json package-lock.json README.md "$stage/"
[ ! -f LICENSE ] || cp LICENSE "$stage/"
for d in daemon models; do
  [ ! -d "dist/$d" ] || (cd dist && find "$d" -name '*.js' | tar -cf - -T -) | (cd "$stage/dist" && tar -xf -)
done
[ ! -f models/catalog.json ] || { mkdir -p "$stage/models"; cp models/catalog.json "$stage/models/"; }
# The installed config and the README name these files (docs/configuration.md, …).
cp -R docs "$stage/docs"

# The lockfile pins the same versions the tests ran with; --ignore-scripts because the package's
# own install script would rebuild the addon, and the tarball carries it prebuilt.
(cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)

cp "$addon" "$stage/prebuilds/linux-$arch/alpaca.node"
if command -v "$strip" >/dev/null; then "$strip" --strip-unneeded "$stage/prebuilds/linux-$arch/alpaca.node"; fi

for f in alpaca.service install.sh README.md alpaca.example.json; do
  [ ! -f "systemd/$f" ] || cp "systemd/$f" "$stage/systemd/"
done
chmod 0755 "$stage/systemd/install.sh"

if [ -n "$nodedir" ]; then
  mkdir -p "$stage/node/bin"
  cp "$nodedir/bin/node" "$stage/node/bin/node"
  for f in LICENSE package.json; do [ ! -f "$nodedir/$f" ] || cp "$nodedir/$f" "$stage/node/"; done
fi

cat > "$stage/bin/alpaca" <<'EOF'
#!/bin/sh
# Starts alpaca with the Node shipped beside it, else the one on the PATH. exec, so that Node
# takes over this process id: systemd's NotifyAccess=main accepts READY/WATCHDOG only from it.
here=$(dirname "$(readlink -f "$0")")
node="$here/../node/bin/node"
[ -x "$node" ] || node=node
exec "$node" "$here/../dist/daemon/cli.js" "$@"
EOF
chmod 0755 "$stage/bin/alpaca"

# ─── the tarball: root-owned, sorted, dated by the last commit, so a rebuild is byte-stable ───
stamp=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
tarball="$out/$name.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$stamp" \
  -C "$out/stage" -cf - "$name" | gzip -n -6 > "$tarball.tmp"
mv "$tarball.tmp" "$tarball"
rm -rf "$out/stage"
echo "$tarball"
