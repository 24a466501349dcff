#!/usr/bin/env bash
# Proves every undefined dynamic symbol of chat_alias.so is provided by the Kamailio binary or by one
# of the shared libraries the .so itself links (libc, libgcc_s, the dynamic loader). Kamailio dlopens
# modules with RTLD_NOW: one stale prototype (say, a function that is a macro in this version) would
# make `loadmodule` fail at start-up; this finds it at build time.
set -euo pipefail
so=${1:?usage: check-symbols.sh path/to/chat_alias.so}
kam=${KAMAILIO_BIN:-$(command -v kamailio || echo /usr/sbin/kamailio)}

undefined=$(nm -D --undefined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
provided=$(
  {
    nm -D --defined-only "$kam" | awk '{print $NF}'
    for lib in $(ldd "$so" | awk '/=>/ {print $3} /^\t\/.*ld-linux/ {print $1}'); do
      [ -f "$lib" ] && nm -D --defined-only "$lib" | awk '{print $NF}'
    done
  } | sed 's/@.*//' | sort -u
)
missing=$(comm -23 <(echo "$undefined") <(echo "$provided") | grep -v '^$' || true)
# Weak references (w) resolve to NULL when absent; they are not load failures.
weak=$(nm -D --undefined-only "$so" | awk '$1=="w" {print $NF}' | sed 's/@.*//' | sort -u)
missing=$(comm -23 <(echo "$missing") <(echo "$weak") | grep -v '^$' || true)
total=$(echo "$undefined" | grep -c . || true)
if [ -n "$missing" ]; then
  echo "check-symbols: $so needs symbols that neither $kam nor its own libraries define:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  exit 1
fi
echo "check-symbols: all $total undefined symbols of $so are provided by $kam or libc/libgcc_s/ld.so"
