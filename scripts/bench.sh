#!/usr/bin/env bash
# `make bench` (after `make build`): the product against its baselines in the same run, one table.
#
# Joins and Kamailio memory (this script): the product (the sample kamailio/kamailio.cfg with
# chat_alias and the relay, started with -A defines as the end-to-end tests and `make run` start
# it) against bench/baseline.cfg (what an operator scripts without the product: tm answering the
# same INVITE with a static multipart/mixed 200), both on the same Kamailio binary, children,
# transport (UDP on 127.0.0.1), -m and allocator. sipp drives kamailio/sipp/join-leave.xml:
# anonymous joins to sip:lounge@im.example.net, all as "bob" (so the product assigns bob-2, bob-3,
# ... : the suffix path), INVITE -> 200 -> ACK -> BYE -> 200 with no pause.
#
#   1. saturation: 64 calls in flight at an offered rate far above capacity, for each allocator in
#      CHAT_ALIAS_BENCH_ALLOCATORS; completed cycles/s and the CPU time of every server process
#      (all Kamailio processes, plus the relay for the product) per cycle;
#   2. open loop: offered rates stepped up until a run is not clean (every call completed, no
#      retransmission, p99 INVITE -> 200 within CHAT_ALIAS_BENCH_P99_MS);
#   3. latency: INVITE -> 200 p50/p99 at one fixed rate both sustain, from sipp's message trace
#      (microsecond timestamps; sipp's own response-time statistics count whole milliseconds);
#   4. memory (product): shm per participant with CHAT_ALIAS_BENCH_HOLD joins held at once, the
#      alias table's preallocated size per slot, and tm's shm per join cycle while its
#      transactions wait out their ~5 s (RFC 3261 §17.2.1 timer I / §17.2.2 timer J).
#
# Product and baseline run interleaved (product, baseline, product, ...), each figure is the median
# of CHAT_ALIAS_BENCH_REPEATS runs, and the load average is recorded at start and end: the machine
# is shared, so only figures of the same run compare.
#
# Rows go to $CHAT_ALIAS_BENCH_DIR/joins.jsonl and memory.jsonl (one JSON object per line); then the
# fan-out part and `chat-alias-bench table` run when target/release/chat-alias-bench exists, else a
# plain table of this script's rows is printed. Load only ever targets 127.0.0.1; every sipp run is
# bounded in calls (-m), concurrency (-l) and time (-timeout). Builds nothing (make bench does).
# Environment variables: docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

repeats=${CHAT_ALIAS_BENCH_REPEATS:-3}
sat_secs=${CHAT_ALIAS_BENCH_SECONDS:-3}
allocators=${CHAT_ALIAS_BENCH_ALLOCATORS:-"qm tlsf"}
alloc=${CHAT_ALIAS_BENCH_ALLOCATOR:-tlsf}
step_rates=${CHAT_ALIAS_BENCH_STEP_RATES:-"1000 2000 3000 4000 6000 8000 10000 12000 15000"}
step_secs=${CHAT_ALIAS_BENCH_STEP_SECONDS:-2}
p99_bound_ms=${CHAT_ALIAS_BENCH_P99_MS:-50}
lat_rate=${CHAT_ALIAS_BENCH_LAT_RATE:-1000}
lat_secs=${CHAT_ALIAS_BENCH_LAT_SECONDS:-3}
hold_n=${CHAT_ALIAS_BENCH_HOLD:-10000}
hold_rate=${CHAT_ALIAS_BENCH_HOLD_RATE:-1000}
children=${CHAT_ALIAS_CHILDREN:-2}
shm_mb=${CHAT_ALIAS_SHM_MB:-2048}
profile_dir=${CHAT_ALIAS_PROFILE_DIR:-target/release}
concurrency=64
# One conference lives in one of the sample config's 16 table stripes and may use only
# max_participants/16 slots: the held participants must fit in one, next to any left behind by an
# overloaded run before them.
max_participants=$(( (hold_n + 2047) / 1024 * 1024 * 16 ))
[ "$max_participants" -ge 16384 ] || max_participants=16384
# tm keeps a finished transaction ~5 s (wait timer); shm and CPU are read after it has drained.
tm_drain_s=6

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in kamailio kamcmd sipp ss awk sort timeout getconf dd gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh, e.g. via make bench)"
done
module=$(realpath "$profile_dir/chat_alias.so" 2>/dev/null) || die "no $profile_dir/chat_alias.so: run make build"
relay_bin=$(realpath "$profile_dir/chat-alias-relay" 2>/dev/null) || die "no $profile_dir/chat-alias-relay: run make build"
scenario=$here/kamailio/sipp/join-leave.xml
product_cfg=$here/kamailio/kamailio.cfg
baseline_cfg=$here/bench/baseline.cfg
groups_dir=$here/kamailio/groups
case " $allocators " in *" $alloc "*) ;; *) allocators="$allocators $alloc" ;; esac

stamp=$(date -u +%Y%m%dT%H%M%SZ)
export CHAT_ALIAS_BENCH_DIR=${CHAT_ALIAS_BENCH_DIR:-$here/target/bench/$stamp}
out=$CHAT_ALIAS_BENCH_DIR
mkdir -p "$out/run" "$out/memory"
joins_jsonl=$out/joins.jsonl
memory_jsonl=$out/memory.jsonl
: > "$joins_jsonl"; : > "$memory_jsonl"
clk_tck=$(getconf CLK_TCK)

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

# The stacks, by name: product-<allocator> and baseline-<allocator>.
declare -A kam_pid relay_pid sip_port ctl_sock run_dir
stacks=()
cleanup() {
  local s
  for s in "${stacks[@]}"; do stop_stack "$s"; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_stack() {
  local s=$1 k=${kam_pid[$1]:-} r=${relay_pid[$1]:-}
  [ -n "$k" ] && kill -TERM "$k" 2>/dev/null || true
  [ -n "$r" ] && kill -TERM "$r" 2>/dev/null || true
  for _ in $(seq 100); do
    { [ -n "$k" ] && kill -0 "$k" 2>/dev/null; } || { [ -n "$r" ] && kill -0 "$r" 2>/dev/null; } || break
    sleep 0.1
  done
  [ -n "$k" ] && kill -KILL "$k" 2>/dev/null || true
  [ -n "$r" ] && kill -KILL "$r" 2>/dev/null || true
  kam_pid[$s]=""; relay_pid[$s]=""
}

# OPTIONS over UDP, as the tests' readiness check: true when the stack answers 200.
sip_ready() {
  local port=$1 fd line req
  req=$out/run/options.sip
  printf 'OPTIONS sip:127.0.0.1:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-bench-%s;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=%s\r\nTo: <sip:127.0.0.1:%s>\r\nCall-ID: bench-%s-%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' \
    "$port" "$RANDOM" "$RANDOM" "$port" "$$" "$RANDOM" > "$req"
  exec {fd}<>"/dev/udp/127.0.0.1/$port" || return 1
  cat "$req" >&"$fd" 2>/dev/null || { exec {fd}>&-; return 1; }
  # One read of the whole datagram (bash's own read would take one byte and lose the rest).
  line=$(timeout 0.5 dd bs=65536 count=1 status=none <&"$fd" 2>/dev/null | head -n1) || true
  exec {fd}>&-
  [[ $line == "SIP/2.0 200"* ]]
}

# start_stack <product|baseline> <allocator>: the relay (product only) and Kamailio on free ports,
# in a run directory of their own, with private copies of the binaries (a build elsewhere
# rewriting chat_alias.so under a running Kamailio kills it).
start_stack() {
  local kind=$1 a=$2 s="$1-$2" dir port cfg relay_sock
  dir=$out/run/$s; mkdir -p "$dir/bin"
  port=$(free_port) || die "no free port"
  run_dir[$s]=$dir; sip_port[$s]=$port; ctl_sock[$s]="unix:$dir/kamailio_ctl"
  relay_sock=$dir/relay.sock
  local defines=(-A "SIP_PORT=$port" -A "CHILDREN=$children" -A "CTL_SOCKET=\"${ctl_sock[$s]}\"")
  if [ "$kind" = product ]; then
    cp "$module" "$dir/bin/chat_alias.so"; cp "$relay_bin" "$dir/bin/chat-alias-relay"
    local msrp_port; msrp_port=$(free_port) || die "no free port"
    "$dir/bin/chat-alias-relay" --control "$relay_sock" --listen "127.0.0.1:$msrp_port" \
      --focus "$relay_sock.focus" > "$dir/relay.log" 2>&1 &
    relay_pid[$s]=$!
    for _ in $(seq 200); do [ -S "$relay_sock" ] && break; kill -0 "${relay_pid[$s]}" 2>/dev/null || break; sleep 0.05; done
    [ -S "$relay_sock" ] || die "the relay of $s did not start (see $dir/relay.log)"
    cfg=$product_cfg
    # BIND_TIMEOUT: sipp never opens the MSRP connection; the held participants of the memory
    # part must not be removed for it while they are counted.
    defines+=(-A "MODULE_PATH=\"$dir/bin/chat_alias.so\"" -A "GROUPS_DIR=\"$groups_dir\""
      -A "RELAY_SOCKET=\"$relay_sock\"" -A "MAX_PARTICIPANTS=$max_participants" -A "BIND_TIMEOUT=600")
  else
    relay_pid[$s]=""
    cfg=$baseline_cfg
  fi
  kamailio -f "$cfg" -DD -E -x "$a" -m "$shm_mb" -M 16 -Y "$dir" "${defines[@]}" > "$dir/kamailio.log" 2>&1 &
  kam_pid[$s]=$!
  stacks+=("$s")
  local deadline=$((SECONDS + 60))
  until sip_ready "$port"; do
    kill -0 "${kam_pid[$s]}" 2>/dev/null || { tail -n 30 "$dir/kamailio.log" >&2; die "kamailio ($s) exited during start-up"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$dir/kamailio.log" >&2; die "kamailio ($s) not ready"; }
    sleep 0.2
  done
  until kamcmd -s "${ctl_sock[$s]}" core.shmmem >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "kamcmd does not answer on ${ctl_sock[$s]}"
    sleep 0.2
  done
}

# Every server process of a stack: Kamailio's main process, its children, and the relay.
# (From /proc: a fresh Debian has no procps. Field 4 of /proc/<pid>/stat is the parent's pid.)
server_pids() {
  echo "${kam_pid[$1]}"
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="${kam_pid[$1]}" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); if (f[2] == p) print $1 }' || true
  [ -z "${relay_pid[$1]}" ] || echo "${relay_pid[$1]}"
}

# utime + stime (clock ticks) used so far by the given pids (/proc/<pid>/stat fields 14 and 15).
cpu_ticks() {
  local pid t=0 v
  for pid in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# A field of core.shmmem (used, real_used, max_used, ...), in bytes.
shm() { kamcmd -s "${ctl_sock[$1]}" core.shmmem | awk -v k="$2:" '$1 == k { print $2; exit }'; }

# A column of the last row of sipp's ';'-separated stat file, by header name.
stat_col() {
  [ -s "$1" ] || { echo 0; return; }
  awk -F';' -v k="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==k) c=i; next} c{v=$c} END{print v+0}' "$1"
}

# run_sipp <stack> <dir> <sipp args...>: one sipp run against a stack, its files in <dir>.
# Prints the wall-clock seconds it took.
run_sipp() {
  local s=$1 dir=$2 port t0 t1; shift 2
  mkdir -p "$dir"
  port=$(free_port) || die "no free port"
  t0=$(date +%s%N)
  ( cd "$dir" && exec sipp "127.0.0.1:${sip_port[$s]}" -sf "$scenario" -i 127.0.0.1 -p "$port" \
      -t u1 -buff_size 4194304 -nostdin -trace_stat -stf stat.csv -fd 1 -trace_err \
      -recv_timeout 10000 -max_recv_loops 2000 -max_retrans 5 -timeout_error -d 0 "$@" \
      > sipp.out 2>&1 ) || true
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR]=$1} END{ if (NR==0) print "null"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }
json_list() { awk 'BEGIN{ORS=""; print "["} NF{for(i=1;i<=NF;i++){ if(n++) print ","; print $i }} END{print "]"}' <<<"$*"; }

# row <file> <section> <measure> <unit> <product> <baseline|null> <target|null> <better>
#     <product samples> <baseline samples> <met rule: ratio>=X | ratio<=X | product<=X | none>
row() {
  local f=$1 section=$2 measure=$3 unit=$4 p=$5 b=$6 target=$7 better=$8 ps=$9 bs=${10} rule=${11}
  awk -v section="$section" -v measure="$measure" -v unit="$unit" -v p="$p" -v b="$b" -v target="$target" \
      -v better="$better" -v ps="$(json_list "$ps")" -v bs="$(json_list "$bs")" -v rule="$rule" '
    function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
    function num(x) { return (x == "null" || x == "") ? "null" : sprintf("%.6g", x) }
    BEGIN {
      ratio = (p != "null" && b != "null" && b + 0 != 0) ? p / b : "null"
      met = "null"
      split(rule, r, /(>=|<=)/); op = (rule ~ />=/) ? ">=" : "<="
      if (r[1] == "ratio" && ratio != "null") met = (op == ">=" ? ratio >= r[2] : ratio <= r[2]) ? "true" : "false"
      if (r[1] == "product" && p != "null") met = (op == ">=" ? p >= r[2] : p <= r[2]) ? "true" : "false"
      printf "{\"section\":%s,\"measure\":%s,\"unit\":%s,\"product\":%s,\"baseline\":%s,\"ratio\":%s,\"target\":%s,\"met\":%s,\"better\":%s,\"samples\":{\"product\":%s,\"baseline\":%s}}\n",
        q(section), q(measure), q(unit), num(p), num(b), (ratio == "null" ? "null" : sprintf("%.3f", ratio)),
        (target == "null" ? "null" : q(target)), met, q(better), ps, (b == "null" ? "null" : bs)
    }' >> "$f"
}

# p50 and p99 of INVITE -> first 200, in ms with microsecond resolution, from sipp's -trace_msg log.
trace_latency() {
  awk '
    { sub(/\r$/, "") }
    /^----------/ && NF == 3 { split($3, hms, ":"); t = hms[1] * 3600 + hms[2] * 60 + hms[3]; next }
    /message sent/ { dir = "s"; first = 1; next }
    /message received/ { dir = "r"; first = 1; next }
    first && NF { start = $0; first = 0; cid = ""; next }
    /^Call-ID:/ { cid = $2 }
    /^CSeq: [0-9]+ INVITE/ {
      if (dir == "s" && start ~ /^INVITE / && !(cid in sent)) sent[cid] = t
      if (dir == "r" && start ~ /^SIP\/2.0 200/ && (cid in sent) && !(cid in got)) { got[cid] = 1; print (t - sent[cid]) * 1000 }
    }' "$@" | sort -g | awk '{v[NR]=$1} END{ if (NR==0) { print "null null 0"; exit } printf "%.3f %.3f %d\n", v[int((NR-1)*0.50)+1], v[int((NR-1)*0.99)+1], NR }'
}

# p99 of sipp's join response times (whole ms) from its -trace_rtt file.
rtt_p99() {
  local f; f=$(ls "$1"/*_rtt.csv 2>/dev/null | head -n1)
  [ -n "$f" ] && [ -s "$f" ] || { echo 999999; return; }
  awk -F';' 'NR>1 && ($3=="join" || $3==1) {print $2}' "$f" | sort -g \
    | awk '{v[NR]=$1} END{ if (NR==0) print 999999; else print v[int((NR-1)*0.99)+1] }'
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
load_start=$(load)
log "results in $out; load average at start: $load_start"
for a in $allocators; do
  start_stack product "$a"
  start_stack baseline "$a"
done
log "stacks ready: ${stacks[*]} (children $children, -m $shm_mb, UDP on 127.0.0.1)"

# ---- 1. saturation: 64 in flight, offered far above capacity ------------------------------------
declare -A sat_calls sat_rate sat_cpu
for s in "${stacks[@]}"; do
  # Warm-up, which also sizes the measured runs to about CHAT_ALIAS_BENCH_SECONDS each.
  secs=$(run_sipp "$s" "$out/saturation/$s-warmup" -r 100000 -rp 1000 -l "$concurrency" -m 2000 -timeout 60s)
  ok=$(stat_col "$out/saturation/$s-warmup/stat.csv" "SuccessfulCall(C)")
  n=$(awk -v ok="$ok" -v t="$secs" -v d="$sat_secs" 'BEGIN{ n = (t > 0) ? ok / t * d : 2000; if (n < 1000) n = 1000; printf "%d", n }')
  sat_calls[$s]=$n
  log "saturation warm-up $s: $ok cycles in ${secs}s; measured runs: $n calls each"
done
sleep "$tm_drain_s"
for i in $(seq "$repeats"); do
  for a in $allocators; do
    for kind in product baseline; do
      s=$kind-$a
      dir=$out/saturation/$s-$i
      pids=$(server_pids "$s")
      c0=$(cpu_ticks $pids)
      secs=$(run_sipp "$s" "$dir" -r 100000 -rp 1000 -l "$concurrency" -m "${sat_calls[$s]}" -timeout 120s)
      ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
      failed=$(stat_col "$dir/stat.csv" "FailedCall(C)")
      # The CPU of tm freeing the run's transactions after their wait belongs to the run too.
      sleep "$tm_drain_s"
      c1=$(cpu_ticks $pids)
      rate=$(awk -v n="$ok" -v t="$secs" 'BEGIN{ printf "%.1f", (t > 0) ? n / t : 0 }')
      cpu=$(awk -v d="$((c1 - c0))" -v n="$ok" -v hz="$clk_tck" 'BEGIN{ printf "%.1f", (n > 0) ? d / hz * 1e6 / n : 0 }')
      sat_rate[$s]="${sat_rate[$s]:-} $rate"; sat_cpu[$s]="${sat_cpu[$s]:-} $cpu"
      log "saturation $s #$i: $ok cycles ($failed failed) in ${secs}s = $rate/s, ${cpu} µs CPU/cycle"
    done
  done
done
for a in $allocators; do
  p=$(median <<<"${sat_rate[product-$a]}"); b=$(median <<<"${sat_rate[baseline-$a]}")
  row "$joins_jsonl" joins "join cycles/s at saturation ($concurrency concurrent, -x $a)" "/s" "$p" "$b" \
    ">= 0.9 x baseline" higher "${sat_rate[product-$a]}" "${sat_rate[baseline-$a]}" "ratio>=0.9"
  p=$(median <<<"${sat_cpu[product-$a]}"); b=$(median <<<"${sat_cpu[baseline-$a]}")
  row "$joins_jsonl" joins "server CPU per join cycle at saturation (all Kamailio processes + relay, -x $a)" "µs" "$p" "$b" \
    null lower "${sat_cpu[product-$a]}" "${sat_cpu[baseline-$a]}" none
done

# ---- 2. open loop: highest clean rate -------------------------------------------------------------
declare -A best
p_best=""; b_best=""
for i in $(seq "$repeats"); do
  best[product]=0; best[baseline]=0
  declare -A going=([product]=1 [baseline]=1)
  for r in $step_rates; do
    for kind in product baseline; do
      [ "${going[$kind]}" = 1 ] || continue
      s=$kind-$alloc
      n=$((r * step_secs))
      dir=$out/openloop/$s-$r-$i
      run_sipp "$s" "$dir" -r "$r" -rp 1000 -l "$n" -m "$n" -trace_rtt -rtt_freq 1000 -timeout "$((step_secs + 60))s" >/dev/null
      ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
      retrans=$(stat_col "$dir/stat.csv" "Retransmissions(C)")
      p99=$(rtt_p99 "$dir")
      if [ "$ok" -eq "$n" ] && [ "$retrans" -eq 0 ] && [ "$p99" -le "$p99_bound_ms" ]; then
        best[$kind]=$r; verdict=clean
      else
        going[$kind]=0; verdict="not clean"
      fi
      log "open loop $s #$i at $r/s: $ok/$n completed, $retrans retransmissions, p99 ${p99} ms: $verdict"
      sleep "$tm_drain_s"
    done
    [ "${going[product]}" = 1 ] || [ "${going[baseline]}" = 1 ] || break
  done
  p_best="$p_best ${best[product]}"; b_best="$b_best ${best[baseline]}"
done
row "$joins_jsonl" joins "highest clean open-loop join cycle rate (all completed, no retransmission, p99 INVITE->200 <= $p99_bound_ms ms; steps $(tr ' ' ',' <<<"$step_rates"); -x $alloc)" "/s" \
  "$(median <<<"$p_best")" "$(median <<<"$b_best")" null higher "$p_best" "$b_best" none

# ---- 3. latency at a fixed rate, and tm's shared memory per cycle --------------------------------
# tm keeps each transaction ~5 s after its final reply (RFC 3261 §17.2.1 timer I, §17.2.2 timer J):
# shm used right after a run at a fixed rate, above what it was before, over the cycles of the
# last 5 s (or of the whole run when shorter), is tm's (and the dialog module's) memory per cycle.
declare -A lat50 lat99 tmmem
tm_per_cycle() { awk -v u0="$1" -v u1="$2" -v ok="$3" -v r="$lat_rate" -v t="$lat_secs" \
  'BEGIN{ w = (t < 5) ? ok : r * 5; printf "%d", (w > 0) ? (u1 - u0) / w : 0 }'; }
for i in $(seq "$repeats"); do
  for kind in product baseline; do
    s=$kind-$alloc
    n=$((lat_rate * lat_secs))
    dir=$out/latency/$s-$i
    u0=$(shm "$s" used)
    run_sipp "$s" "$dir" -r "$lat_rate" -rp 1000 -l "$n" -m "$n" -trace_msg -timeout "$((lat_secs + 60))s" >/dev/null
    u1=$(shm "$s" used)
    ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
    tm=$(tm_per_cycle "$u0" "$u1" "$ok")
    read -r l50 l99 cnt <<<"$(trace_latency "$dir"/*_messages.log)"
    lat50[$kind]="${lat50[$kind]:-} $l50"; lat99[$kind]="${lat99[$kind]:-} $l99"; tmmem[$kind-$alloc]="${tmmem[$kind-$alloc]:-} $tm"
    gzip -qf "$dir"/*_messages.log || true
    log "latency $s #$i at $lat_rate/s: $cnt joins, INVITE->200 p50 $l50 ms, p99 $l99 ms; shm +$(( (u1 - u0) / 1024 )) KiB right after: $tm B per cycle"
    sleep "$tm_drain_s"
  done
done
row "$joins_jsonl" joins "INVITE->200 p50 at $lat_rate/s offered (sipp message trace, µs resolution; -x $alloc)" ms \
  "$(median <<<"${lat50[product]}")" "$(median <<<"${lat50[baseline]}")" null lower "${lat50[product]}" "${lat50[baseline]}" none
row "$joins_jsonl" joins "INVITE->200 p99 at $lat_rate/s offered (sipp message trace, µs resolution; -x $alloc)" ms \
  "$(median <<<"${lat99[product]}")" "$(median <<<"${lat99[baseline]}")" null lower "${lat99[product]}" "${lat99[baseline]}" none
# The other allocators: one such run each.
for a in $allocators; do
  [ "$a" != "$alloc" ] || continue
  for kind in product baseline; do
    s=$kind-$a
    n=$((lat_rate * lat_secs))
    dir=$out/memory/$s-tm
    u0=$(shm "$s" used)
    run_sipp "$s" "$dir" -r "$lat_rate" -rp 1000 -l "$n" -m "$n" -timeout "$((lat_secs + 60))s" >/dev/null
    u1=$(shm "$s" used)
    ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
    tmmem[$s]=$(tm_per_cycle "$u0" "$u1" "$ok")
    log "memory: $s: shm +$(( (u1 - u0) / 1024 )) KiB right after $ok cycles at $lat_rate/s: ${tmmem[$s]} B per cycle"
    sleep "$tm_drain_s"
  done
done

# ---- 4. memory ------------------------------------------------------------------------------------
for a in $allocators; do
  row "$memory_jsonl" memory "Kamailio shm per join cycle while tm's transactions wait out ~5 s (INVITE + BYE, $lat_rate/s, -x $a)" B \
    "$(median <<<"${tmmem[product-$a]}")" "$(median <<<"${tmmem[baseline-$a]}")" null lower "${tmmem[product-$a]}" "${tmmem[baseline-$a]}" none
done

# Participants held at once: shm used before, with all of them joined (after tm has drained the
# ramp's transactions), and after they left.
participants() { kamcmd -s "${ctl_sock[$1]}" chat_alias.stats 2>/dev/null | awk '$1=="participants:"{print $2; exit}'; }
ramp_s=$(( (hold_n + hold_rate - 1) / hold_rate ))
# Held long enough for the count to settle (a slow ramp ends later) and for tm to drain after it.
hold_ms=$(( (ramp_s + tm_drain_s + 12) * 1000 ))
for a in $allocators; do
  s=product-$a
  # Every call so far ended with a 200 to its BYE or failed: any participant still joined was left
  # behind (kept until the dialog times out). Keep the evidence.
  stale=$(participants "$s" || echo 0); stale=${stale:-0}
  if [ "$stale" != 0 ]; then
    kamcmd -s "${ctl_sock[$s]}" chat_alias.list 2>&1 | head -c 400000 > "$out/memory/$s-left-behind.list.txt" || true
    log "memory $s: $stale participants still joined after all calls ended: see $out/memory/$s-left-behind.*"
  fi
  row "$joins_jsonl" joins "participants left joined after their calls ended (all runs above, -x $a)" participants \
    "$stale" null "0" lower "$stale" "" "product<=0"
  u0=$(shm "$s" used); r0=$(shm "$s" real_used)
  log "memory $s: $hold_n joins at $hold_rate/s, each held ${hold_ms} ms"
  run_sipp "$s" "$out/memory/hold-$a" -r "$hold_rate" -rp 1000 -l "$hold_n" -m "$hold_n" -d "$hold_ms" \
    -timeout "$(( ramp_s + hold_ms / 1000 + 60 ))s" > /dev/null &
  hold_sipp=$!
  # Until all have joined, or the count has not moved for 2 s after the ramp (joins refused or
  # failed): the first participants leave hold_ms after they joined.
  t0=$SECONDS; deadline=$((SECONDS + ramp_s + 10)); held=0; last=-1; same_since=$SECONDS
  while [ $SECONDS -lt $deadline ]; do
    held=$(participants "$s" || echo 0); held=${held:-0}
    [ "$held" -ge "$((hold_n + stale))" ] && break
    [ "$held" = "$last" ] || { last=$held; same_since=$SECONDS; }
    [ $((SECONDS - t0)) -gt "$ramp_s" ] && [ $((SECONDS - same_since)) -ge 2 ] && break
    sleep 0.25
  done
  sleep "$tm_drain_s"
  held=$(( $(participants "$s" || echo 0) - stale ))
  u1=$(shm "$s" used); r1=$(shm "$s" real_used)
  wait "$hold_sipp" || true
  sleep "$tm_drain_s"
  left=$(participants "$s" || echo "?"); u2=$(shm "$s" used)
  [ "$held" -ge "$hold_n" ] || log "memory $s: only $held of $hold_n joined when measured (see $out/memory/hold-$a/)"
  per_used=$(( held > 0 ? (u1 - u0) / held : 0 )); per_real=$(( held > 0 ? (r1 - r0) / held : 0 ))
  log "memory $s: $held held: shm used +$(( (u1 - u0) / 1024 )) KiB ($per_used B each, real_used $per_real B); after they left: $left joined ($stale before), used $(( (u2 - u0) / 1024 )) KiB above the start"
  row "$memory_jsonl" memory "Kamailio shm per joined participant (used, $held held; the module's table entry and dialog block, tm's transactions drained; -x $a)" B \
    "$per_used" null "<= 512 B" lower "$per_used" "" "product<=512"
  row "$memory_jsonl" memory "Kamailio shm per joined participant with allocator overhead (real_used, -x $a)" B \
    "$per_real" null null lower "$per_real" "" none
done
# The alias table is allocated in full at start-up; the module logs its size.
table=$(grep -o 'alias table: [0-9]* stripes, [0-9]* bytes' "${run_dir[product-$alloc]}/kamailio.log" | head -n1 | awk '{print $5}')
if [ -n "$table" ]; then
  row "$memory_jsonl" memory "alias table preallocated at start-up, per participant slot (max_participants $max_participants)" B \
    "$(( table / max_participants ))" null null lower "$(( table / max_participants ))" "" none
fi

load_end=$(load)
for s in "${stacks[@]}"; do stop_stack "$s"; done
# Operations at load: a normal join or leave writes no ERROR or WARNING line in any log, and at most
# one INFO line each (the module's audit line); refusals under overload (503, 486) keep their INFO.
for s in "${stacks[@]}"; do
  case $s in product-*) ;; *) continue ;; esac
  logs=("${run_dir[$s]}/kamailio.log")
  [ -f "${run_dir[$s]}/relay.log" ] && logs+=("${run_dir[$s]}/relay.log")
  bad=$(cat "${logs[@]}" | grep -c -E 'ERROR|WARN' || true)
  info=$(cat "${logs[@]}" | grep -c 'INFO' || true)
  joins=$(grep -c 'joined: ' "${run_dir[$s]}/kamailio.log" || true)
  row "$joins_jsonl" joins "ERROR and WARNING lines in Kamailio's and the relay's logs, whole run (${s#product-})" lines \
    "$bad" null "0" lower "$bad" "" "product<=0"
  if [ "${joins:-0}" -gt 0 ]; then
    per=$(awk -v i="$info" -v j="$joins" 'BEGIN { printf "%.2f", i / j }')
    row "$joins_jsonl" joins "INFO lines per join (join + leave audit lines and refusals, whole run, ${s#product-})" lines \
      "$per" null "<= 2" lower "$per" "" "product<=2"
  fi
done
for s in "${stacks[@]}"; do
  f=${run_dir[$s]}/kamailio.log
  log "$s log: $(grep -c 'ERROR' "$f" || true) ERROR lines ($(grep -c 'Faked reply' "$f" || true) of them dlg_onreply 'Faked reply!'), $(grep -c 'WARNING' "$f" || true) WARNING lines"
  rm -rf "${run_dir[$s]}/bin"
  gzip -qf "$f" "${run_dir[$s]}/relay.log" 2>/dev/null || true
done
gzip -qf "$out"/*/*/*_errors.log 2>/dev/null || true
{
  echo "load average: $load_start at start, $load_end at end of the joins part"
  echo "children $children, -m $shm_mb, allocators $allocators (open loop, latency, memory: $alloc), repeats $repeats"
} > "$out/joins-conditions.txt"
log "joins part done; load average at end: $load_end"

# ---- fan-out part and the table ---------------------------------------------------------------------
bench_bin=$here/$profile_dir/chat-alias-bench
if [ -x "$bench_bin" ]; then
  # 5 s measured after 1 s of warm-up per run (24 runs): the whole make bench stays well under 20
  # minutes on a fresh machine, build included; CHAT_ALIAS_BENCH_FANOUT_SECONDS for longer runs.
  "$bench_bin" fanout --relay "$relay_bin" --out "$out/fanout.jsonl" \
    --seconds "${CHAT_ALIAS_BENCH_FANOUT_SECONDS:-5}" --warmup 1 || log "fan-out part failed"
  "$bench_bin" table "$out"
else
  printf '\n| %-100s | %12s | %12s | %6s | %-18s | %-5s |\n' measure product baseline ratio target met
  printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 102))" "$(printf -- '-%.0s' $(seq 14))" \
    "$(printf -- '-%.0s' $(seq 14))" "$(printf -- '-%.0s' $(seq 8))" "$(printf -- '-%.0s' $(seq 20))" "$(printf -- '-%.0s' $(seq 7))"
  cat "$joins_jsonl" "$memory_jsonl" | awk '
    function f(k,   v) { if (match($0, "\"" k "\":(\"([^\"\\\\]|\\\\.)*\"|[^,}]*)")) { v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); gsub(/^"|"$/, "", v); return v } return "" }
    { printf "| %-100s | %12s | %12s | %6s | %-18s | %-5s |\n", f("measure") " (" f("unit") ")", f("product"), f("baseline"), f("ratio"), f("target"), f("met") }'
  echo
  echo "load average: $load_start at start, $load_end at end; rows: $joins_jsonl, $memory_jsonl"
fi
