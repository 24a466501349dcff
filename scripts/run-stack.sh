#!/usr/bin/env bash
# Starts the relay and Kamailio with chat_alias on loopback, in the foreground, until SIGINT/SIGTERM,
# then stops both. Honours CHAT_ALIAS_SIP_PORT, CHAT_ALIAS_MSRP_PORT, CHAT_ALIAS_GROUPS_DIR,
# CHAT_ALIAS_RUN_DIR, CHAT_ALIAS_CHILDREN, CHAT_ALIAS_SHM_MB and CHAT_ALIAS_SHM_MANAGER (see README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

sip_port=${CHAT_ALIAS_SIP_PORT:-5060}
msrp_port=${CHAT_ALIAS_MSRP_PORT:-2855}
groups_dir=$(realpath -m "${CHAT_ALIAS_GROUPS_DIR:-kamailio/groups}")
run_dir=$(realpath -m "${CHAT_ALIAS_RUN_DIR:-target/run}")
profile_dir=${CHAT_ALIAS_PROFILE_DIR:-target/release}
module=$(realpath "$profile_dir/chat_alias.so")
relay_bin=$(realpath "$profile_dir/chat-alias-relay")
children=${CHAT_ALIAS_CHILDREN:-4}
# Shared memory for the load the README claims (docs/benchmarks.md, "Allocator and shared memory"):
# tm keeps every finished transaction ~5 s, about 29 KB per join + leave, so 4,000 joins/s hold
# ~580 MB; the alias table (16384 slots) and the joined participants need ~55 MB more. TLSF (-x
# tlsf) serves the same joins with less CPU than Kamailio's default allocator (qm).
shm_mb=${CHAT_ALIAS_SHM_MB:-768}
shm_manager=${CHAT_ALIAS_SHM_MANAGER:-tlsf}

mkdir -p "$run_dir"
relay_sock="$run_dir/relay.sock"
ctl_sock="$run_dir/kamailio_ctl"
focus_sock="$relay_sock.focus"  # the module's focus socket (modparam focus_socket's default)
relay_pid=""; kam_pid=""

stop() {
  trap - INT TERM EXIT
  [ -n "$kam_pid" ] && kill -TERM "$kam_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill -TERM "$relay_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    { [ -n "$kam_pid" ] && kill -0 "$kam_pid" 2>/dev/null; } || { [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; } || break
    sleep 0.1
  done
  [ -n "$kam_pid" ] && kill -KILL "$kam_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill -KILL "$relay_pid" 2>/dev/null || true
  rm -f "$run_dir"/*.pid
  echo "chat-alias: stopped"
}
trap stop INT TERM EXIT

"$relay_bin" --control "$relay_sock" --listen "127.0.0.1:$msrp_port" --focus "$focus_sock" \
  > >(tee "$run_dir/relay.log") 2>&1 &
relay_pid=$!
echo "$relay_pid" > "$run_dir/relay.pid"
for _ in $(seq 100); do [ -S "$relay_sock" ] && break; kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.05; done
[ -S "$relay_sock" ] || { echo "chat-alias: the relay did not start (see $run_dir/relay.log)" >&2; exit 1; }

kamailio -f "$here/kamailio/kamailio.cfg" -DD -E -x "$shm_manager" -m "$shm_mb" -M 16 -Y "$run_dir" -P "$run_dir/kamailio.pid" \
  -A "SIP_PORT=$sip_port" -A "CHILDREN=$children" -A "MODULE_PATH=\"$module\"" \
  -A "GROUPS_DIR=\"$groups_dir\"" -A "RELAY_SOCKET=\"$relay_sock\"" -A "CTL_SOCKET=\"unix:$ctl_sock\"" \
  > >(tee "$run_dir/kamailio.log") 2>&1 &
kam_pid=$!

cat <<TXT
chat-alias: Kamailio with chat_alias on sip:127.0.0.1:$sip_port (UDP+TCP), relay MSRP on 127.0.0.1:$msrp_port
chat-alias: groups from $groups_dir; logs, sockets and pids in $run_dir
chat-alias: operator commands: kamcmd -s unix:$ctl_sock chat_alias.list | chat_alias.stats | chat_alias.reload
chat-alias: try it: target/release/chat-alias-client join sip:lounge@im.example.net --server 127.0.0.1:$sip_port --identity sip:bob@example.com --alias bob
chat-alias:         (again in another terminal as sip:carol@partner.example.org --alias bob: told bob-2), or make demo
chat-alias: Ctrl-C stops both.
TXT
# Stay in the foreground until a signal, until either process exits, or until whoever started us
# (e.g. make, which forwards SIGTERM but not SIGINT to its children) is gone.
parent=$PPID
while kill -0 "$kam_pid" 2>/dev/null && kill -0 "$relay_pid" 2>/dev/null; do
  [ "$(ps -o ppid= -p $$ | tr -d ' ')" = "$parent" ] || break
  sleep 0.5 & wait $! || true
done
