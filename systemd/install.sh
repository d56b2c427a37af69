#!/bin/sh
# Installs alpaca from an unpacked release tarball (alpaca-<version>-linux-arm64.tar.gz) as a
# systemd service. Run from anywhere inside the unpacked folder:
#
#   sudo ./systemd/install.sh              install or upgrade, enable, start when a model is there
#   sudo ./systemd/install.sh --uninstall  remove the program and the unit; keep config and models
#   sudo ./systemd/install.sh --purge      also remove /etc/alpaca, /var/lib/alpaca and the user
#   ./systemd/install.sh --root DIR        install into DIR as if it were /, touching nothing else:
#                                          useradd, chown and systemctl are printed, not run
#
# Running it twice leaves the same result; an existing /etc/alpaca/config.json is never replaced.
#
# Layout:
#   /opt/alpaca/                    the program (replaced whole on upgrade)
#   /opt/alpaca/bin/alpaca          what ExecStart runs; /usr/local/bin/alpaca links to it
#   /etc/alpaca/config.json         settings (from config.example.json, which is refreshed)
#   /var/lib/alpaca/models/         models (the service's StateDirectory)
#   /etc/systemd/system/alpaca.service
set -eu

PREFIX=/opt/alpaca
UNIT=/etc/systemd/system/alpaca.service
SERVICE_USER=alpaca

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

root=""
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage 2; root=$(cd "$2" && pwd); shift 2 ;;
    --root=*) root=$(cd "${1#--root=}" && pwd); shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) action=purge; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

# The unpacked release: this script lives in its systemd/ folder.
src=$(cd "$(dirname "$0")/.." && pwd)

# Run from a source checkout, there is nothing to install yet: say how to make the release.
if [ ! -e "$src/bin/alpaca" ] && [ -e "$src/package.json" ] && [ -d "$src/daemon" ]; then
  cat >&2 <<EOF
install.sh: $src is a source checkout, not an unpacked release; it installs a release tarball.
Make one first (README.md, "On a Raspberry Pi"):
  npm ci && npm run pack:arm64   # release/alpaca-<version>-linux-arm64.tar.gz, Node for arm64 inside
                                 # on x86-64 it needs g++-aarch64-linux-gnu; on a Pi, Node >= 20.19
then unpack it and run its systemd/install.sh:
  tar -xzf release/alpaca-*-linux-arm64.tar.gz && sudo alpaca-*-linux-arm64/systemd/install.sh
EOF
  exit 1
fi

say() { echo "alpaca: $*"; }
# Commands that change the running system: run for real, or only shown under --root.
system() {
  if [ -n "$root" ]; then
    echo "would run: $*"
  else
    "$@"
  fi
}

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo), or use --root DIR for a scratch install" >&2
  exit 1
fi

have_systemd() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# ─── uninstall ────────────────────────────────────────────────────────────────────────────────

remove_program() {
  if have_systemd; then
    systemctl disable --now alpaca.service 2>/dev/null || true
  else
    system systemctl disable --now alpaca.service
  fi
  rm -f "$root$UNIT"
  rm -rf "$root$PREFIX" "$root$PREFIX.new" "$root$PREFIX.old"
  # Only our own link: a different alpaca in /usr/local/bin is someone else's.
  if [ "$(readlink "$root/usr/local/bin/alpaca" 2>/dev/null)" = "$PREFIX/bin/alpaca" ]; then
    rm -f "$root/usr/local/bin/alpaca"
  fi
  if have_systemd; then systemctl daemon-reload; else system systemctl daemon-reload; fi
  say "removed $PREFIX and the unit"
}

case "$action" in
  uninstall)
    remove_program
    say "kept /etc/alpaca (settings), /var/lib/alpaca (models) and the user $SERVICE_USER; --purge removes them"
    exit 0 ;;
  purge)
    remove_program
    rm -rf "$root/etc/alpaca" "$root/var/lib/alpaca"
    if [ -n "$root" ] || getent passwd "$SERVICE_USER" >/dev/null; then
      system userdel "$SERVICE_USER"
    fi
    say "removed /etc/alpaca, /var/lib/alpaca and the user $SERVICE_USER"
    exit 0 ;;
esac

# ─── install ──────────────────────────────────────────────────────────────────────────────────

for f in dist/daemon/cli.js bin/alpaca systemd/alpaca.service package.json; do
  [ -e "$src/$f" ] || { echo "install.sh: $src is not an unpacked alpaca release ($f missing)" >&2; exit 1; }
done
# The tarball brings its own Node (Debian and Raspberry Pi OS ship an older one); a tarball
# without it needs Node >= 20 on the PATH.
if [ ! -x "$src/node/bin/node" ] && ! command -v node >/dev/null; then
  echo "install.sh: this release has no bundled Node and none is installed (Node >= 20 is needed)" >&2
  exit 1
fi

# 1. The service user: a system account without a login shell or home of its own; its home is
#    the state directory so nothing of it lands in /home (which the unit hides anyway).
if [ -n "$root" ] || ! getent passwd "$SERVICE_USER" >/dev/null; then
  system useradd --system --user-group --home-dir /var/lib/alpaca --no-create-home \
    --shell /usr/sbin/nologin --comment "alpaca LLaMA daemon" "$SERVICE_USER"
fi

# 2. The program. Copied beside the old one and swapped in with two renames, so a failed copy
#    (a full SD card) leaves the installed version intact.
if [ "$src" != "$root$PREFIX" ]; then
  mkdir -p "$(dirname "$root$PREFIX")"
  rm -rf "$root$PREFIX.new" "$root$PREFIX.old"
  mkdir "$root$PREFIX.new"
  (cd "$src" && tar -cf - .) | (cd "$root$PREFIX.new" && tar -xf - --no-same-owner)
  chmod -R go-w "$root$PREFIX.new"
  [ ! -e "$root$PREFIX" ] || mv "$root$PREFIX" "$root$PREFIX.old"
  mv "$root$PREFIX.new" "$root$PREFIX"
  rm -rf "$root$PREFIX.old"
fi
mkdir -p "$root/usr/local/bin"
ln -sfn "$PREFIX/bin/alpaca" "$root/usr/local/bin/alpaca"

# 3. Directories. systemd creates /run/alpaca and would create the others too, but models are
#    copied into /var/lib/alpaca/models before the first start.
mkdir -p "$root/etc/alpaca" "$root/var/lib/alpaca/models"
chmod 0750 "$root/var/lib/alpaca" "$root/var/lib/alpaca/models"
system chown -R "$SERVICE_USER:$SERVICE_USER" /var/lib/alpaca

# 4. Settings: the example is refreshed (it lists every key of this version); config.json is
#    created from it once and then belongs to the administrator.
example="$src/systemd/alpaca.example.json"
if [ -f "$example" ]; then
  install -m 0644 "$example" "$root/etc/alpaca/config.example.json"
  if [ ! -e "$root/etc/alpaca/config.json" ]; then
    install -m 0640 "$example" "$root/etc/alpaca/config.json"
    system chgrp "$SERVICE_USER" /etc/alpaca/config.json
    say "wrote /etc/alpaca/config.json: set \"model\" there"
  else
    say "kept /etc/alpaca/config.json (new keys are listed in config.example.json)"
  fi
fi

# 5. The unit.
mkdir -p "$(dirname "$root$UNIT")"
install -m 0644 "$src/systemd/alpaca.service" "$root$UNIT"

# 6. Enable; start (or restart into the new version) only when the configured model is there:
#    a start without one fails, and Restart= would retry it until the start limit.
model=""
node="$root$PREFIX/node/bin/node"
[ -x "$node" ] || node=node
if [ -f "$root/etc/alpaca/config.json" ]; then
  model=$("$node" -e 'try { const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (typeof c.model === "string") console.log(c.model); } catch {}' \
    "$root/etc/alpaca/config.json" 2>/dev/null || true)
fi
system systemctl daemon-reload
system systemctl enable alpaca.service
if [ -n "$model" ] && [ -r "$root$model" ]; then
  system systemctl restart alpaca.service
  say "started; follow it with: journalctl -fu alpaca"
else
  say "enabled, not started: no model at ${model:-(none configured)}."
  say "put a GGUF file there (or set \"model\" in /etc/alpaca/config.json), then: systemctl start alpaca"
fi
say "users in group $SERVICE_USER may use the socket: usermod -aG $SERVICE_USER <user>"
