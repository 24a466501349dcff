#!/usr/bin/env bash
# Installs what building, running and testing chat_alias needs, idempotently, on Debian bookworm
# (as root): kamailio, the Debian source of exactly the installed kamailio version (for headers),
# libclang (bindgen), sip-tester (sipp), tshark and iproute2 (ss: free ports in scripts/bench.sh).
# Prints the Kamailio source directory on stdout's last line. Every step is skipped when its result is already there.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${CHAT_ALIAS_DEPS_DIR:-$here/.deps}
log() { printf 'setup: %s\n' "$*" >&2; }

need_pkgs=()
# The packages we need; each is installed only when dpkg does not already have it.
for pkg in kamailio libclang-dev sip-tester tshark xz-utils iproute2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$pkg")
done

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
}

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing packages ${need_pkgs[*]} and not root: install them and run again"; exit 1
  fi
  apt_update
  log "installing ${need_pkgs[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

# The installed version, e.g. 5.6.3-2 (Debian) and 5.6.3 (upstream).
deb_ver=$(dpkg-query -W -f='${Version}' kamailio)
up_ver=${deb_ver%%-*}
up_ver=${up_ver#*:}
src_dir=${KAMAILIO_SRC:-$deps_dir/kamailio-$up_ver}

if [ ! -f "$src_dir/src/core/sr_module.h" ]; then
  # deb-src entry mirroring the machine's existing deb entries (same URIs and suites).
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      log "adding deb-src entries"
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        > /etc/apt/sources.list.d/chat-alias-deb-src.sources
    elif [ -f /etc/apt/sources.list ]; then
      grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/chat-alias-deb-src.list
    fi
    apt_updated=0
  fi
  apt_update
  mkdir -p "$deps_dir/dl"
  log "fetching the Debian source of kamailio $deb_ver"
  (cd "$deps_dir/dl" && apt-get source -qq --download-only "kamailio=$deb_ver" >&2)
  orig=$(ls "$deps_dir"/dl/kamailio_"$up_ver".orig.tar.* | head -n1)
  tmp=$(mktemp -d "$deps_dir/unpack.XXXXXX")
  tar -xf "$orig" -C "$tmp"
  top=$(ls "$tmp" | head -n1)
  rm -rf "$src_dir"
  mv "$tmp/$top" "$src_dir"
  rmdir "$tmp"
fi
log "kamailio $deb_ver, headers in $src_dir"
echo "$src_dir"
