#!/usr/bin/env bash
# `make demo`: a scripted conversation in sip:lounge@im.example.net with three chat-alias-client
# processes, each line of the transcript prefixed with the participant whose view it is.
#
#   alice = sip:alice@example.com          joins with her own identity, as "Alice"
#   bob   = sip:bob@example.com            joins anonymously as "bob"
#   carol = sip:carol@partner.example.org  joins anonymously as "bob" too, over TCP: told "bob-2"
#
# They talk; carol (bob-2) whispers to Alice; Alice answers privately; carol leaves; Alice's next
# private message to bob-2 is refused (404): the alias is gone.
#
# Uses the stack answering on 127.0.0.1:${CHAT_ALIAS_SIP_PORT:-5060} (e.g. `make run` in another
# terminal); when none answers there, starts one itself (scripts/run-stack.sh on free ports) and
# stops it at the end. The transcript goes to stdout; progress and errors to stderr.
# CHAT_ALIAS_CLIENT_BIN overrides the client binary (default target/release/chat-alias-client).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

client=${CHAT_ALIAS_CLIENT_BIN:-$here/target/release/chat-alias-client}
[ -x "$client" ] || { echo "demo: $client not found: run \`make build\` (or \`make demo\`)" >&2; exit 1; }
group=sip:lounge@im.example.net
sip_port=${CHAT_ALIAS_SIP_PORT:-5060}
work=$(mktemp -d "${TMPDIR:-/tmp}/chat-alias-demo.XXXXXX")
stack_pid=""
pids=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  exec 3>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [ -n "$stack_pid" ]; then
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

answering() { "$client" ping --server "127.0.0.1:$1" --timeout "${2:-500}" >/dev/null 2>&1; }

# A port free for TCP and UDP on loopback.
free_port() {
  local used p
  used=$(ss -Htuan 2>/dev/null | awk '{print $5}' | sed 's/.*://' | sort -u)
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
}

if answering "$sip_port"; then
  echo "demo: using the stack that answers on 127.0.0.1:$sip_port" >&2
else
  sip_port=$(free_port)
  msrp_port=$(free_port)
  while [ "$msrp_port" = "$sip_port" ]; do msrp_port=$(free_port); done
  run_dir="$here/target/demo-run"
  mkdir -p "$run_dir"
  echo "demo: no stack on 127.0.0.1:${CHAT_ALIAS_SIP_PORT:-5060}; starting one on SIP $sip_port, MSRP $msrp_port (logs in $run_dir)" >&2
  CHAT_ALIAS_SIP_PORT=$sip_port CHAT_ALIAS_MSRP_PORT=$msrp_port CHAT_ALIAS_RUN_DIR=$run_dir \
    bash scripts/run-stack.sh > "$run_dir/stack.out" 2>&1 &
  stack_pid=$!
  for _ in $(seq 100); do
    answering "$sip_port" 200 && break
    kill -0 "$stack_pid" 2>/dev/null || { cat "$run_dir/stack.out" >&2; echo "demo: the stack did not start" >&2; exit 1; }
    sleep 0.2
  done
  answering "$sip_port" 500 || { cat "$run_dir/stack.out" >&2; echo "demo: the stack does not answer" >&2; exit 1; }
fi

server=127.0.0.1:$sip_port

# ---- the scripts (one command per line; see `chat-alias-client join --help`)
cat > "$work/alice-1.txt" <<'EOF'
/expect I am bob-2
Welcome to the lounge, both of you!
/expect really Carol
/msg bob-2 Your secret is safe with me.
EOF
# Sent once carol has left.
cat > "$work/alice-2.txt" <<'EOF'
/expect Got to go
/msg bob-2 Are you still there?
Looks like bob-2 has left.
EOF
cat > "$work/bob.txt" <<'EOF'
/expect Welcome to the lounge
Thanks, Alice! Two of us called bob: that is a first.
/expect has left
EOF
cat > "$work/carol.txt" <<'EOF'
Hi all! The lounge tells me I am bob-2.
/expect Two of us called bob
/msg Alice Psst, Alice: bob-2 is really Carol.
/expect secret is safe
Got to go, bye!
EOF

# run NAME ARGS...: the client, its output to $work/NAME.out and, prefixed, to stdout.
run() {
  local name=$1; shift
  local label
  label=$(printf '%-5s' "$name")
  ( "$client" join "$group" --server "$server" --expect-timeout 15000 "$@" 2>&1 \
      | tee "$work/$name.out" | sed -u "s/^/$label | /" ) 3>&- &   # fd 3: Alice's FIFO, ours only
  pids+=($!)
}

wait_joined() {
  for _ in $(seq 150); do
    grep -q '^joined ' "$work/$1.out" 2>/dev/null && return 0
    grep -qE '^(refused|\[error\])' "$work/$1.out" 2>/dev/null && break
    sleep 0.1
  done
  echo "demo: $1 did not join" >&2
  exit 1
}

cat <<TXT
Chat Alias demo in $group
  alice = sip:alice@example.com, joins with her own identity as "Alice"
  bob   = sip:bob@example.com, joins anonymously as "bob"
  carol = sip:carol@partner.example.org, joins anonymously as "bob" too (over TCP)
Each line is what one participant's client shows; "me" is that participant.

TXT

# Alice reads her commands from a FIFO: the second part is written once carol has left.
mkfifo "$work/alice.in"
exec 3<> "$work/alice.in"   # read-write: opening it does not wait for a reader
cat "$work/alice-1.txt" >&3
run alice --identity sip:alice@example.com --name Alice --script "$work/alice.in"
wait_joined alice
run bob --identity sip:bob@example.com --alias bob --script "$work/bob.txt"
wait_joined bob
run carol --identity sip:carol@partner.example.org --alias bob --tcp --script "$work/carol.txt"
carol_pid=${pids[-1]}
wait_joined carol

# When carol's client exits, her BYE has been answered: the focus and the relay have let bob-2 go.
wait "$carol_pid"
cat "$work/alice-2.txt" >&3
exec 3>&-   # end of Alice's script: she leaves too
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()
for n in alice bob carol; do
  grep -q '^left ' "$work/$n.out" || { echo "demo: $n did not leave cleanly" >&2; status=1; }
  grep -q '^\[error\] no message containing' "$work/$n.out" && { echo "demo: $n missed a message" >&2; status=1; }
done
exit "$status"
