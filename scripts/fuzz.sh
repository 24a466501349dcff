#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository (crates/*/fuzz) until it has executed FUZZ_RUNS
# inputs (default 10 million) or its time cap passes, keeps the corpora under the gitignored
# crates/*/fuzz/corpus/<target>, prints a summary table (target, executions, exec/s, findings),
# writes it to docs/fuzzing.md and exits non-zero on a finding.
#
# Installs what it needs, idempotently: the nightly toolchain (libFuzzer's sancov instrumentation
# needs -Z flags) and cargo-fuzz, each only when missing.
#
# Environment:
#   FUZZ_RUNS      executions per target (libFuzzer -runs; default 10000000; -1: no limit)
#   FUZZ_SECONDS   time cap per target (default: per target, 1.6 x the time FUZZ_RUNS=10 million
#                  took at the exec/s measured on a busy 2-core machine; see DEFAULT_SECONDS)
#   FUZZ_TARGETS   space-separated subset of targets (default: all)
#   FUZZ_JOBS      targets run at once (default 1)
#   FUZZ_REPORT    where to write the table (default docs/fuzzing.md; empty: nowhere)
#   FUZZ_README    file whose block between `<!-- fuzz-table -->` and `<!-- /fuzz-table -->` gets
#                  the table too (default README.md; empty: none)
#   FUZZ_RESULTS   directory keeping each target's row and libFuzzer logs (default: a temporary
#                  one). The table lists every row in it, so a campaign run in several parts
#                  (different FUZZ_TARGETS, same FUZZ_RESULTS) ends with one table. A target that
#                  already has a row there resumes: it runs only the executions it still lacks
#                  (same corpus), and its row adds up every session.
#   FUZZ_DEADLINE  a time (`date -d` syntax, e.g. 15:20) by which every run stops: a target's time
#                  cap is cut to what is left, and a target is not started with less than a
#                  minute left.
#
# Findings: libFuzzer writes the crashing input to crates/<crate>/fuzz/artifacts/<target>/;
# reproduce with `cargo +nightly fuzz run -s none -a <target> <that file>` from crates/<crate>.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'fuzz: %s\n' "$*" >&2; }

# Time cap per target when FUZZ_SECONDS is not set: 10 million executions at the exec/s measured
# on the 2-core development machine (2026-12-03, two targets at a time, nice 19, other builds
# running; docs/fuzzing.md), times 1.6. A target normally stops earlier, at FUZZ_RUNS; the cap
# only bounds a run that is slower than measured. The switch target runs whole multi-connection
# sessions per input, hence its time. A target missing here gets FALLBACK_SECONDS.
declare -A DEFAULT_SECONDS=(
  [switch]=4534         # 3,529 exec/s
  [join_invite]=1490    # 10,741
  [group_document]=1329 # 12,046
  [nickname]=1060       # 15,107
  [msrp_decoder]=709    # 22,576
  [sip_headers]=570     # 28,101
  [cpim_headers]=512    # 31,301
  [sdp]=500             # 32,061
  [multipart]=412       # 38,888
  [control_line]=410    # 39,093 (requests and responses)
  [focus_reply]=210     # 76,447
  [focus_request]=152   # 105,620
  [sip_uri]=233         # 68,755
  [sip_name_addr]=210   # 76,251
  [msrp_request]=90    # 179,395
)
FALLBACK_SECONDS=600

# ---- toolchain ----
if ! command -v rustup >/dev/null; then
  log "rustup is needed (https://rustup.rs): it installs the nightly toolchain libFuzzer builds with"
  exit 2
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked >&2
fi

# ---- the targets ----
# (crate dir, target) pairs, from each fuzz crate's own list.
pairs=()
for dir in "$here"/crates/*/fuzz; do
  crate=$(dirname "$dir")
  for t in $(cd "$crate" && cargo +nightly fuzz list); do
    if [ -z "${FUZZ_TARGETS:-}" ] || [[ " $FUZZ_TARGETS " == *" $t "* ]]; then
      pairs+=("$crate:$t")
    fi
  done
done
[ ${#pairs[@]} -gt 0 ] || { log "no target matches FUZZ_TARGETS=${FUZZ_TARGETS:-}"; exit 2; }

# No sanitizer: the fuzzed crates forbid unsafe code, so AddressSanitizer would only halve the
# speed; `-a` keeps debug assertions and overflow checks on.
FUZZ_FLAGS=(-s none -a)

# The longest runs first, so that with FUZZ_JOBS > 1 they overlap the short ones. (Each run builds
# its target first; libFuzzer's clock starts after the build.)
mapfile -t pairs < <(for p in "${pairs[@]}"; do
  printf '%s %s\n' "${DEFAULT_SECONDS[${p#*:}]:-$FALLBACK_SECONDS}" "$p"
done | sort -rn | cut -d' ' -f2-)

runs=${FUZZ_RUNS:-10000000}
if [ -n "${FUZZ_RESULTS:-}" ]; then
  results=$FUZZ_RESULTS
  mkdir -p "$results"
else
  results=$(mktemp -d)
  trap 'rm -rf "$results"' EXIT
fi

run_one() {
  local crate=$1 t=$2
  local secs=${FUZZ_SECONDS:-${DEFAULT_SECONDS[$t]:-$FALLBACK_SECONDS}}
  local corpus="$crate/fuzz/corpus/$t" artifacts="$crate/fuzz/artifacts/$t"
  local seeds="$crate/fuzz/seeds/$t"
  mkdir -p "$corpus" "$artifacts"
  # An earlier session of this campaign (FUZZ_RESULTS): resume it.
  local prev_started="" prev_took=0 prev_execs=0 prev_findings=0 prev_sessions=0 _x
  if [ -n "${FUZZ_RESULTS:-}" ] && [ -f "$results/$t.row" ]; then
    IFS=$'\t' read -r _x _x prev_started prev_took prev_execs _x prev_findings _x prev_sessions \
      <"$results/$t.row"
    prev_sessions=${prev_sessions:-1}
    [ "$prev_started" = "-" ] && prev_started=""
    [ "$prev_took" = "?" ] && prev_took=0
  fi
  local want=$runs
  if [ "$runs" -ge 0 ] && [ "$prev_execs" -gt 0 ]; then
    want=$((runs - prev_execs))
    if [ "$want" -le 0 ]; then
      log "$t: already $prev_execs executions"
      return
    fi
  fi
  if [ -n "${FUZZ_DEADLINE:-}" ]; then
    local left=$(($(date -d "$FUZZ_DEADLINE" +%s) - $(date +%s)))
    if [ "$left" -lt 60 ]; then
      log "$t: not started, less than a minute to FUZZ_DEADLINE"
      [ -f "$results/$t.row" ] ||
        printf '%s\t%s\t-\t0\t0\t0\t0\t0\t0\n' "$t" "${crate#"$here"/crates/}" >"$results/$t.row"
      return
    fi
    [ "$left" -lt "$secs" ] && secs=$left
  fi
  local before after
  before=$(ls "$artifacts" | wc -l)
  local extra=()
  [ -d "$seeds" ] && extra+=("$seeds")
  log "$t: up to $want executions or ${secs}s"
  local session=$((prev_sessions + 1))
  local out="$results/$t.log" rc=0 started
  [ "$session" -gt 1 ] && out="$results/$t.$session.log"
  started=${prev_started:-$(date -u +%H:%M)}
  (cd "$crate" && cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "$corpus" "${extra[@]}" -- \
      -runs="$want" -max_total_time="$secs" -print_final_stats=1 -max_len=8192 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$artifacts/") >"$out" 2>&1 || rc=$?
  after=$(ls "$artifacts" | wc -l)
  # (`|| true`: a run that died before printing its statistics still gets its row.)
  local execs took
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | grep -o '[0-9]*$' | tail -n1) || true
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$out" | awk '{print $5}' | tail -n1) || true
  local findings=$((after - before))
  if [ "$rc" != 0 ] && [ "$findings" = 0 ]; then
    findings=1 # the run failed without an artifact (build or harness error): count it
  fi
  execs=$((prev_execs + ${execs:-0}))
  took=$((prev_took + ${took:-0}))
  local new_findings=$findings
  findings=$((prev_findings + findings))
  local rate=0
  [ "$took" -gt 0 ] && rate=$((execs / took))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${crate#"$here"/crates/}" "$started" \
    "$took" "$execs" "$rate" "$findings" "$secs" "$session" >"$results/$t.row"
  if [ "$new_findings" != 0 ]; then
    log "$t: FINDING (exit $rc); log: see below, inputs in ${artifacts#"$here"/}"
    tail -n 40 "$out" >&2
  else
    log "$t: $execs executions in ${took}s"
  fi
}

jobs_max=${FUZZ_JOBS:-1}
for p in "${pairs[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_one "${p%%:*}" "${p#*:}" &
done
wait

# Every row in the results directory (this run's and, with FUZZ_RESULTS, earlier parts'), slowest
# target first.
rows=$(cat "$results"/*.row | sort -t$'\t' -k6,6n)
table=$(
  printf '| target | crate | started (UTC) | sessions | seconds | executions | exec/s | 10 M reached | findings |\n'
  printf '|---|---|---|---:|---:|---:|---:|---|---:|\n'
  while IFS=$'\t' read -r name crate started took execs rate findings _cap sessions; do
    reached=no
    [ "$execs" -ge 10000000 ] && reached=yes
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$crate" "$started" \
      "${sessions:-1}" "$took" "$execs" "$rate" "$reached" "$findings"
  done <<<"$rows"
)
total=$(awk -F'\t' '{s += $7} END {print s + 0}' <<<"$rows")
echo "$table"

report=${FUZZ_REPORT-$here/docs/fuzzing.md}
if [ -n "$report" ]; then
  {
    echo "# Fuzzing"
    echo
    echo "Written by \`make fuzz\` (scripts/fuzz.sh). Every parser of untrusted bytes and the MSRP"
    echo "switch (fed arbitrary multi-connection frame sequences) has a cargo-fuzz target under"
    echo "\`crates/*/fuzz\`; corpora stay in the gitignored \`crates/*/fuzz/corpus/<target>\`."
    echo
    echo "Latest campaign: finished $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
      "$(cargo +nightly --version | cut -d' ' -f1-2), cargo-fuzz $(cargo +nightly fuzz --version | awk '{print $NF}')," \
      "no sanitizer, debug assertions and overflow checks on, ${FUZZ_JOBS:-1} target(s) at a time;" \
      "each target stops at $runs executions or at its time cap."
    echo
    echo "$table"
    echo
    echo "Findings in total: $total."
  } >"$report.tmp"
  # Keep anything written below the generated part (notes on findings) when there is any.
  if [ -f "$report" ] && grep -q '^<!-- notes -->' "$report"; then
    { echo; sed -n '/^<!-- notes -->/,$p' "$report"; } >>"$report.tmp"
  fi
  mv "$report.tmp" "$report"
  log "table written to ${report#"$here"/}"
fi

readme=${FUZZ_README-$here/README.md}
if [ -n "$readme" ] && [ -f "$readme" ] && grep -q '^<!-- fuzz-table -->' "$readme" &&
  grep -q '^<!-- /fuzz-table -->' "$readme"; then
  {
    sed '/^<!-- fuzz-table -->/q' "$readme"
    echo "Latest campaign, finished $(date -u '+%Y-%m-%d %H:%M UTC') (up to $runs executions per target;"
    echo "written by scripts/fuzz.sh, notes in docs/fuzzing.md); findings in total: $total."
    echo
    echo "$table"
    sed -n '/^<!-- \/fuzz-table -->/,$p' "$readme"
  } >"$readme.tmp"
  mv "$readme.tmp" "$readme"
  log "table written to ${readme#"$here"/}"
fi

if [ "$total" != 0 ]; then
  log "$total finding(s)"
  exit 1
fi
