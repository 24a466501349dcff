#!/usr/bin/env bash
# The SIP half of `make bench`: starts the relay and Kamailio with chat_alias on loopback exactly as
# the end-to-end tests do (the sample kamailio/kamailio.cfg with -A defines, free ports and a run
# directory of its own under target/bench), then drives it with sipp (kamailio/sipp/join-leave.xml):
#
#   1. memory: HOLD_N anonymous joins to the lounge, all held at once; shared memory
#      (kamcmd core.shmmem), chat_alias.stats and the RSS/PSS of Kamailio and the relay are read
#      before, while all are joined, and after they have left;
#   2. rates: CALLS join+leave calls at each of RATES calls/s (every call: INVITE, 200, ACK, a short
#      pause, BYE, 200), reporting successful joins, failed calls, joins/s achieved, join and leave
#      response-time percentiles and sipp's retransmissions.
#
# Load only ever targets 127.0.0.1; every sipp run is bounded in calls (-m) and time (-timeout).
# Results: target/bench/<timestamp>/ (raw sipp files, logs) and summary.md there, printed at the end.
#
# Environment (all optional): CHAT_ALIAS_BENCH_RATES ("200 500 1000 2000"), CHAT_ALIAS_BENCH_CALLS (5000),
# CHAT_ALIAS_BENCH_HOLD (2000), CHAT_ALIAS_BENCH_HOLD_RATE (500), CHAT_ALIAS_BENCH_PAUSE_MS (200),
# CHAT_ALIAS_CHILDREN (8), CHAT_ALIAS_SHM_MB (512), CHAT_ALIAS_PROFILE_DIR (target/release),
# CHAT_ALIAS_BENCH_CFG (kamailio/kamailio.cfg: another config taking the same -A defines).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

rates=${CHAT_ALIAS_BENCH_RATES:-"200 500 1000 2000"}
calls=${CHAT_ALIAS_BENCH_CALLS:-5000}
hold_n=${CHAT_ALIAS_BENCH_HOLD:-2000}
hold_rate=${CHAT_ALIAS_BENCH_HOLD_RATE:-500}
pause_ms=${CHAT_ALIAS_BENCH_PAUSE_MS:-200}
children=${CHAT_ALIAS_CHILDREN:-8}
shm_mb=${CHAT_ALIAS_SHM_MB:-512}
profile_dir=${CHAT_ALIAS_PROFILE_DIR:-target/release}
# One conference lives in one of the 16 table stripes and may use only max_participants/16 slots
# (kamailio/README.md, max_participants): 65536 leaves 4096 per conference, above anything below.
max_participants=${CHAT_ALIAS_BENCH_MAX_PARTICIPANTS:-65536}
# tm keeps a completed transaction about 5 s (wait timer); memory is read after it has drained.
tm_drain_s=7

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in kamailio kamcmd sipp ss awk sort dd timeout gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh, e.g. via make bench)"
done
module=$(realpath "$profile_dir/chat_alias.so" 2>/dev/null) || die "no $profile_dir/chat_alias.so: run make build"
relay_bin=$(realpath "$profile_dir/chat-alias-relay" 2>/dev/null) || die "no $profile_dir/chat-alias-relay: run make build"
scenario=$here/kamailio/sipp/join-leave.xml
cfg=$(realpath "${CHAT_ALIAS_BENCH_CFG:-kamailio/kamailio.cfg}")
groups_dir=$here/kamailio/groups

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$here/target/bench/$stamp
run=$out/run
mkdir -p "$run"
summary=$out/summary.md

# A port free for UDP and TCP on 127.0.0.1, below the ephemeral range (where sipp's and kamcmd's
# own sockets land). Checked, not reserved: a clash only makes start-up fail, loudly.
used_ports=" "
free_port() {
  local p
  for _ in $(seq 500); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    case $used_ports in *" $p "*) continue ;; esac
    if [ -z "$(ss -Hlntu "( sport = :$p )" 2>/dev/null)" ]; then
      used_ports="$used_ports$p "
      echo "$p"; return 0
    fi
  done
  return 1
}

# Private copies: a build elsewhere rewrites target/release/chat_alias.so in place (cp -f), and a
# running Kamailio whose mapped module changes under it dies (SIGBUS, or worse).
mkdir -p "$run/bin"
cp "$module" "$run/bin/chat_alias.so"; module=$run/bin/chat_alias.so
cp "$relay_bin" "$run/bin/chat-alias-relay"; relay_bin=$run/bin/chat-alias-relay

sip_port=$(free_port) || die "no free port"
msrp_port=$(free_port) || die "no free port"
relay_sock=$run/relay.sock
rpc_sock=$run/relay.sock.focus  # the module's focus socket (default next to relay_socket)
ctl="unix:$run/kamailio_ctl"
relay_pid=""; kam_pid=""; sipp_pid=""; kam_status=""

stop_stack() {
  [ -n "$sipp_pid" ] && kill -TERM "$sipp_pid" 2>/dev/null || true
  [ -n "$kam_pid" ] && kill -TERM "$kam_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill -TERM "$relay_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    { [ -n "$kam_pid" ] && kill -0 "$kam_pid" 2>/dev/null; } \
      || { [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; } || break
    sleep 0.1
  done
  [ -n "$kam_pid" ] && kill -KILL "$kam_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill -KILL "$relay_pid" 2>/dev/null || true
  [ -n "$sipp_pid" ] && kill -KILL "$sipp_pid" 2>/dev/null || true
  if [ -n "$kam_pid" ]; then
    kam_status=0; wait "$kam_pid" 2>/dev/null || kam_status=$?
  fi
  wait 2>/dev/null || true
  kam_pid=""; relay_pid=""; sipp_pid=""
}
trap 'stop_stack' EXIT
trap 'exit 130' INT TERM

kamcmd_() { kamcmd -s "$ctl" "$@"; }

# One field of a kamcmd struct reply (`name: value` lines).
field() { awk -v k="$1" '$1 == k":" { print $2; exit }'; }

# OPTIONS over UDP, as the tests' readiness check: true when Kamailio answers 200. The request is
# written from a file by cat, so it leaves in one datagram.
sip_ready() {
  local fd line req=$run/options.sip
  printf 'OPTIONS sip:127.0.0.1:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-bench-%s;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=%s\r\nTo: <sip:127.0.0.1:%s>\r\nCall-ID: bench-%s-%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' \
    "$sip_port" "$RANDOM" "$RANDOM" "$sip_port" "$$" "$RANDOM" > "$req"
  exec {fd}<>"/dev/udp/127.0.0.1/$sip_port" || return 1
  cat "$req" >&"$fd" 2>/dev/null || { exec {fd}>&-; return 1; }
  # One read of the whole datagram (bash's own read would take one byte and lose the rest).
  line=$(timeout 0.5 dd bs=65536 count=1 status=none <&"$fd" 2>/dev/null | head -n1) || true
  exec {fd}>&-
  [[ $line == "SIP/2.0 200"* ]]
}

start_stack() {
  # As tests/support/mod.rs: the relay asks the module for nicknames over Kamailio's JSON-RPC socket
  # (when this relay build has the option).
  local relay_args=(--control "$relay_sock" --listen "127.0.0.1:$msrp_port")
  if "$relay_bin" --help 2>/dev/null | grep -q -- '--focus-rpc'; then
    relay_args+=(--focus "$rpc_sock")
  fi
  "$relay_bin" "${relay_args[@]}" > "$run/relay.log" 2> "$run/relay.err" &
  relay_pid=$!
  for _ in $(seq 200); do [ -S "$relay_sock" ] && break; kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.05; done
  [ -S "$relay_sock" ] || die "the relay did not start (see $run/relay.err)"
  kamailio -f "$cfg" -DD -E -m "$shm_mb" -M 16 -Y "$run" \
    -A "SIP_PORT=$sip_port" -A "CHILDREN=$children" -A "MODULE_PATH=\"$module\"" \
    -A "GROUPS_DIR=\"$groups_dir\"" -A "RELAY_SOCKET=\"$relay_sock\"" -A "CTL_SOCKET=\"$ctl\"" -A "RPC_SOCKET=\"$rpc_sock\"" \
    -A "DIALOG_TIMEOUT=43200" -A "RELAY_TIMEOUT_MS=200" -A "MAX_PARTICIPANTS=$max_participants" \
    > "$run/kamailio.log" 2>&1 &
  kam_pid=$!
  local deadline=$((SECONDS + 30))
  until sip_ready; do
    kill -0 "$kam_pid" 2>/dev/null || { tail -n 30 "$run/kamailio.log" >&2; die "kamailio exited during start-up"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$run/kamailio.log" >&2; die "kamailio not ready"; }
    sleep 0.2
  done
  until kamcmd_ chat_alias.stats >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "kamcmd does not answer on $ctl"
    sleep 0.2
  done
}

participants() { kamcmd_ chat_alias.stats 2>/dev/null | field participants; }

# "used real_used" of Kamailio's shared memory, in bytes.
shm_used() { kamcmd_ core.shmmem | awk '$1=="used:"{u=$2} $1=="real_used:"{r=$2} $1=="max_used:"{m=$2} END{print u, r, m}'; }

# Datagrams the kernel dropped on Kamailio's UDP socket (receive buffer full): ss's skmem "d".
udp_drops() {
  ss -Huamn "( sport = :$sip_port )" 2>/dev/null \
    | grep -o 'd[0-9]*)' | tr -dc '0-9\n' | awk '{s+=$1} END{print s+0}'
}

# Host-wide UDP receive-buffer drops (/proc/net/snmp RcvbufErrors): Kamailio's and sipp's sockets,
# and anything else running on the machine meanwhile.
udp_rcvbuf_errors() { awk '$1=="Udp:" && $2 ~ /^[0-9]+$/ {print $6; exit}' /proc/net/snmp; }

# Kamailio's processes: the main one and its children.
kam_pids() { echo "$kam_pid"; ps -o pid= --ppid "$kam_pid" | tr -d ' '; }

# CPU time (user + system, clock ticks) used so far by the given pids.
cpu_ticks() {
  local pid t=0 v
  for pid in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# "<processes> <sum RSS kB> <max RSS kB> <sum PSS kB>" of the given pids.
mem_of() {
  local rss=0 max=0 pss=0 n=0 r p pid
  for pid in "$@"; do
    r=$(ps -o rss= -p "$pid" 2>/dev/null | tr -d ' ') || continue
    [ -n "$r" ] || continue
    p=$(awk '$1=="Pss:"{print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    n=$((n + 1)); rss=$((rss + r)); pss=$((pss + ${p:-0})); [ "$r" -gt "$max" ] && max=$r
  done
  echo "$n $rss $max $pss"
}

# Runs sipp in $1 (a new directory) with the remaining arguments; leaves its files there. Call it in
# a subshell or in the background: it replaces the calling process with sipp (so $! is sipp's pid).
sipp_exec() {
  local dir=$1 port; shift
  mkdir -p "$dir"
  port=$(free_port) || exit 1
  cd "$dir"
  exec sipp "127.0.0.1:$sip_port" -sf "$scenario" -i 127.0.0.1 -p "$port" \
    -t u1 -buff_size 4194304 -nostdin -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 100 -trace_counts \
    -trace_screen -trace_err -recv_timeout 10000 -max_recv_loops 2000 -max_retrans 5 \
    -timeout_error "$@" > sipp.out 2>&1
}

# A column of the last row of sipp's ';'-separated stat file, by header name.
stat_col() {
  [ -s "$1" ] || { echo 0; return; }
  awk -F';' -v k="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==k) c=i; next} c{v=$c} END{print v+0}' "$1"
}

# "count rate p50 p90 p99 max" of one RTD (1 = join, 2 = leave) from sipp's rtt file: response times
# in whole ms as sipp measures them ("<1" for 0); rate = responses per second between the first and
# the last response.
rtd_stats() {
  local f=$1 rtd=$2
  [ -n "$f" ] && [ -s "$f" ] || { echo 0 0 - - - -; return; }
  awk -F';' -v r="$rtd" 'NR>1 && ($3==r || $3=="join" && r==1 || $3=="leave" && r==2) {print $1, $2}' "$f" \
    | sort -t' ' -k2,2g | awk '
      { t[NR]=$1; v[NR]=$2; if (NR==1 || $1<tmin) tmin=$1; if ($1>tmax) tmax=$1 }
      END {
        n=NR; if (n==0) { print 0, 0, "-", "-", "-", "-"; exit }
        span=(tmax-tmin)/1000.0
        rate=(span>0)? (n-1)/span : 0
        p50=v[int((n-1)*0.50)+1]; p90=v[int((n-1)*0.90)+1]; p99=v[int((n-1)*0.99)+1]
        printf "%d %.0f %s %s %s %s\n", n, rate, ms(p50), ms(p90), ms(p99), ms(v[n])
      }
      function ms(x) { return x < 1 ? "<1" : sprintf("%d", x) }'
}

# ---------------------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
  echo "# chat_alias SIP benchmark, $stamp"
  echo
  echo "- machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "- build: git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes'); chat_alias.so sha256 $(sha256sum "$module" | cut -c1-12)"
  echo "- $(kamailio -v 2>/dev/null | head -n1); $(sipp -v 2>/dev/null | awk 'NF{print $1, $2; exit}')"
  echo "- Kamailio: ${cfg#"$here"/}, -m $shm_mb -M 16, CHILDREN=$children, MAX_PARTICIPANTS=$max_participants, DIALOG_TIMEOUT=43200; UDP on 127.0.0.1:$sip_port"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its 2 cores with sipp and Kamailio)"
  echo "- scenario: kamailio/sipp/join-leave.xml (anonymous \"bob\" joins sip:lounge@im.example.net: bob, bob-2, ...)"
  echo
} > "$summary"

log "starting relay + kamailio (sip 127.0.0.1:$sip_port, msrp 127.0.0.1:$msrp_port, run dir $run)"
start_stack
log "ready"

# ---- 1. memory: hold_n participants joined at once ------------------------------------------
sleep 1
read -r base_used base_real base_max <<<"$(shm_used)"
read -r kn0 krss0 kmax0 kpss0 <<<"$(mem_of $(kam_pids))"
read -r _ rrss0 _ rpss0 <<<"$(mem_of "$relay_pid")"
ramp_s=$(( (hold_n + hold_rate - 1) / hold_rate ))
hold_ms=$(( (ramp_s + tm_drain_s + 6) * 1000 ))
log "memory: $hold_n joins at $hold_rate/s, held ${hold_ms} ms each"
sipp_exec "$out/hold" -r "$hold_rate" -rp 1000 -m "$hold_n" -l "$hold_n" -d "$hold_ms" \
  -timeout "$(( ramp_s + hold_ms / 1000 + 40 ))s" &
sipp_pid=$!
deadline=$((SECONDS + ramp_s + 20))
n=0
while [ $SECONDS -lt $deadline ]; do
  n=$(participants || echo 0); [ "${n:-0}" -ge "$hold_n" ] && break
  sleep 0.25
done
held=${n:-0}
# Let the INVITE transactions of the ramp leave tm's wait state: what is left is per participant.
sleep "$tm_drain_s"
held2=$(participants || echo 0)
read -r hold_used hold_real hold_max <<<"$(shm_used)"
read -r kn1 krss1 kmax1 kpss1 <<<"$(mem_of $(kam_pids))"
read -r _ rrss1 _ rpss1 <<<"$(mem_of "$relay_pid")"
hold_rc=0; wait "$sipp_pid" || hold_rc=$?; sipp_pid=""
sleep "$tm_drain_s"
left=$(participants || echo "?")
read -r after_used after_real after_max <<<"$(shm_used)"
hold_ok=$(stat_col "$out/hold/stat.csv" "SuccessfulCall(C)")
hold_counts=$(ls "$out"/hold/*_counts.csv 2>/dev/null | head -n1)
hold_rr=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i ~ /^[0-9]+_200_Retrans$/) c[i]=1; next}
                     {s=0; for(i in c) s+=$i} END{print s+0}' "$hold_counts" 2>/dev/null || echo 0)
hold_failed=$(stat_col "$out/hold/stat.csv" "FailedCall(C)")
per_used=$(( held2 > 0 ? (hold_used - base_used) / held2 : 0 ))
per_real=$(( held2 > 0 ? (hold_real - base_real) / held2 : 0 ))
{
  echo "## Memory with $held2 participants joined at once (one conference, all \"bob\")"
  echo
  echo "sipp: $hold_n calls at $hold_rate/s, each held ${hold_ms} ms after its ACK, then BYE (exit $hold_rc: $hold_ok successful, $hold_failed failed); read ${tm_drain_s} s after the last join, when tm's transactions have drained."
  echo
  echo "| | before | all joined | after all left | per participant |"
  echo "|---|---:|---:|---:|---:|"
  echo "| chat_alias.stats participants | 0 | $held2 | $left | |"
  echo "| shm used (core.shmmem used) | $((base_used / 1024)) KiB | $((hold_used / 1024)) KiB | $((after_used / 1024)) KiB | $per_used B |"
  echo "| shm real_used (with allocator overhead) | $((base_real / 1024)) KiB | $((hold_real / 1024)) KiB | $((after_real / 1024)) KiB | $per_real B |"
  echo "| shm max_used (peak so far, includes the ramp's transactions) | $((base_max / 1024)) KiB | $((hold_max / 1024)) KiB | $((after_max / 1024)) KiB | |"
  echo "| Kamailio RSS, sum of $kn1 processes | $krss0 KiB | $krss1 KiB | | |"
  echo "| Kamailio RSS, largest process | $kmax0 KiB | $kmax1 KiB | | |"
  echo "| Kamailio PSS, sum (shared pages counted once) | $kpss0 KiB | $kpss1 KiB | | $(( held2 > 0 ? (kpss1 - kpss0) * 1024 / held2 : 0 )) B |"
  echo "| relay RSS | $rrss0 KiB | $rrss1 KiB | | $(( held2 > 0 ? (rrss1 - rrss0) * 1024 / held2 : 0 )) B |"
  echo
  echo "The alias table itself is allocated in full at start-up (in \"before\"); the growth is the dialog"
  echo "module's per-dialog state and what chat_alias keeps per dialog (its callback parameter)."
  echo "RSS sums count the shared memory once per process that touched it; PSS also keeps pages that"
  echo "shm_malloc once used for the ramp's transactions (freed, still resident): an upper bound."
  echo
  echo "200 OK retransmissions sipp received while the participants were held (ACKed): $hold_rr."
  echo
} >> "$summary"
log "memory: $held joined (seen), $held2 after drain; shm used +$per_used B/participant; $left left after BYE"

# ---- 2. join+leave at fixed rates -----------------------------------------------------------
{
  echo "## Join + leave at fixed rates ($calls calls each, ${pause_ms} ms between ACK and BYE)"
  echo
  echo "| offered calls/s | joins answered 200 | complete calls (join+leave) | failed calls | joins/s achieved | join p50 / p90 / p99 / max (ms) | leave p50 / p99 / max (ms) | requests retransmitted by sipp | responses retransmitted by Kamailio | UDP drops at Kamailio / whole host | CPU per call, Kamailio / relay (µs) | left joined |"
  echo "|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"
} >> "$summary"
for rate in $rates; do
  dir=$out/rate-$rate; n=1
  while [ -e "$dir" ]; do n=$((n + 1)); dir=$out/rate-$rate-$n; done
  secs=$(( (calls + rate - 1) / rate ))
  log "rate $rate/s: $calls calls (~${secs} s)"
  rc=0
  drops0=$(udp_drops); host0=$(udp_rcvbuf_errors)
  kcpu0=$(cpu_ticks $(kam_pids)); rcpu0=$(cpu_ticks "$relay_pid")
  ( sipp_exec "$dir" -r "$rate" -rp 1000 -m "$calls" -l "$calls" -d "$pause_ms" -timeout "$(( secs + 40 ))s" ) || rc=$?
  ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
  failed=$(stat_col "$dir/stat.csv" "FailedCall(C)")
  retrans=$(stat_col "$dir/stat.csv" "Retransmissions(C)")
  rttf=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -n1)
  read -r jn jrate j50 j90 j99 jmax <<<"$(rtd_stats "$rttf" 1)"
  read -r ln lrate l50 l90 l99 lmax <<<"$(rtd_stats "$rttf" 2)"
  # Responses received again: while the call lasts (sipp's per-message "Retrans" of the 200s) and
  # after it ended ("dead call" messages; with the short pause, nearly all of tm's 200
  # retransmissions arrive after the BYE).
  countsf=$(ls "$dir"/*_counts.csv 2>/dev/null | head -n1)
  rr=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i ~ /^[0-9]+_200_Retrans$/) c[i]=1; next}
                  {s=0; for(i in c) s+=$i} END{print s+0}' "$countsf" 2>/dev/null || echo 0)
  dead=$(stat_col "$dir/stat.csv" "DeadCallMsgs(C)")
  drops=$(( $(udp_drops) - drops0 )); hostdrops=$(( $(udp_rcvbuf_errors) - host0 ))
  kcpu=$(( ($(cpu_ticks $(kam_pids)) - kcpu0) * 1000000 / clk_tck / calls ))
  rcpu=$(( ($(cpu_ticks "$relay_pid") - rcpu0) * 1000000 / clk_tck / calls ))
  sleep 2
  still=$(participants || echo "?")
  if [ "$still" != 0 ]; then
    # Participants left behind although their calls ended: keep the evidence.
    kamcmd_ chat_alias.list 2>&1 | head -c 200000 > "$dir/chat_alias.list.txt" || true
    kamcmd_ dlg.list 2>&1 | head -c 400000 > "$dir/dlg.list.txt" || true
    log "rate $rate/s: $still participants still joined: see $dir/chat_alias.list.txt and dlg.list.txt"
  fi
  echo "| $rate | $jn | $ok | $failed | $jrate | $j50 / $j90 / $j99 / $jmax | $l50 / $l99 / $lmax | $retrans | $((rr + dead)) | $drops / $hostdrops | $kcpu / $rcpu | $still |" >> "$summary"
  log "rate $rate/s: sipp exit $rc, $ok ok, $failed failed, $jrate joins/s, join p99 ${j99} ms, $retrans retransmissions"
  sleep 1
done
read -r end_used end_real end_max <<<"$(shm_used)"
{
  echo
  echo "Joins/s achieved: 200 OKs to INVITEs per second between the first and the last (sipp -trace_rtt)."
  echo "Response times: INVITE sent to 200 received (join), BYE sent to 200 received (leave), by sipp's clock in whole milliseconds (<1: under 1 ms)."
  echo "Requests retransmitted by sipp: INVITEs and BYEs sent again after 500 ms without an answer (UDP timer A)."
  echo "Responses retransmitted by Kamailio: 200 OKs sipp received again, during the call or after it ended (sipp's DeadCallMsgs);"
  echo "a lower bound, since sipp stops listening when its last call ends (the memory run, where calls last longer, gives the per-call figure)."
  echo "CPU per call: user+system time of all Kamailio processes (and of the relay) during the run, including tm's retransmissions and timers, over the calls (join + leave)."
  echo "UDP drops: datagrams the kernel dropped for a full receive buffer, on Kamailio's socket (ss) and host-wide (/proc/net/snmp RcvbufErrors, including sipp's socket)."
  echo "Failed calls: see target/bench/$stamp/rate-*/*_errors.log.gz (sipp's reason per call)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "shm at the end: used $((end_used / 1024)) KiB, real_used $((end_real / 1024)) KiB, max_used $((end_max / 1024)) KiB of $shm_mb MiB (tm keeps each finished transaction ~5 s)."
  echo "Raw files: target/bench/$stamp/."
} >> "$summary"

stop_stack
# dialog's "Faked reply!" is a known 5.6.3 quirk logged once per join (docs/benchmarks.md).
{
  echo "Kamailio log: $(grep -c 'Faked reply' "$run/kamailio.log" || true) \"dlg_onreply(): Faked reply!\" lines (one per join, a known 5.6.3 quirk), $(grep 'ERROR\|CRITICAL\|BUG' "$run/kamailio.log" | grep -vc 'Faked reply' || true) other ERROR/CRITICAL/BUG lines; exit status after SIGTERM: ${kam_status:-?}."
} >> "$summary"
# Keep target/bench small: drop the private binaries, compress the big logs (sipp's error log
# holds every message of a dead call).
rm -rf "$run/bin"
gzip -qf "$out"/*/*_errors.log "$run"/kamailio.log "$run"/relay.log 2>/dev/null || true
log "done: $summary"
cat "$summary"
