#!/usr/bin/env bash
# Load test keyrouter with wrk, against a baseline actix-web server measured in the same run.
#
#   benches/wrk/run.sh                 # every scenario, 3 rounds of 10 s each, wrk -t1 -c64
#   DURATION=5 ROUNDS=1 benches/wrk/run.sh   # quicker
#   SCENARIOS=heavy DURATION=2 ROUNDS=1 benches/wrk/run.sh   # some scenarios only:
#                                      # json form query size reload heavy defaults batch
#
# Installs wrk if missing, builds release, generates services files, starts each server on a
# free 127.0.0.1 port, runs the scenarios and prints a Markdown table. Everything it starts is
# stopped on exit, even on failure. Only 127.0.0.1 is ever targeted.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
# Each scenario runs ROUNDS times, alternating with the baseline; the table shows medians.
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
# Server workers, the same for keyrouter and the baseline. On a small machine wrk needs cores
# too: by default the server gets the cores wrk does not use (1 on this 2-core machine, where
# 2 workers fighting wrk for CPU gave ~17 % fewer requests and 2.7x the p99).
WORKERS=${WORKERS:-$(( $(nproc) > THREADS ? $(nproc) - THREADS : 1 ))}
WRK_DIR=benches/wrk
SCENARIOS=${SCENARIOS:-json form query size reload heavy defaults batch}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi

# PROFILE=dev only checks that the scenarios run (figures from a debug build mean nothing).
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --quiet --bin keyrouter --example baseline
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PROFILE_DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
KEYROUTER="$TARGET_DIR/$PROFILE_DIR/keyrouter"
BASELINE="$TARGET_DIR/$PROFILE_DIR/examples/baseline"

source "$WRK_DIR/lib.sh"

# run_wrk SCRIPT PORT SERVICES MAXNODES -> prints the RESULT line's fields
run_wrk() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WRK_DIR/$1" \
    "http://127.0.0.1:$2" -- "$3" "$4" | grep '^RESULT' | sed 's/^RESULT //'
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

start_keyrouter() { # FILE [WORKERS] -> sets KR_PID, KR_PORT (WORKERS 0: keyrouter's default)
  KR_PORT=$(free_port)
  "$KEYROUTER" --services "$1" --address "127.0.0.1:$KR_PORT" --workers "${2:-$WORKERS}" --log-level WARN \
    2>>"$WORK/keyrouter.log" &
  KR_PID=$!; PIDS+=("$KR_PID")
  wait_port "$KR_PORT"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

start_baseline() { # [WORKERS] -> sets BL_PID, BL_PORT (WORKERS 0: actix-web's default)
  BL_PORT=$(free_port)
  "$BASELINE" "127.0.0.1:$BL_PORT" "${1:-$WORKERS}" 2>/dev/null &
  BL_PID=$!; PIDS+=("$BL_PID")
  wait_port "$BL_PORT"
}

ROWS=()
# measure NAME SCRIPT SERVICES: ROUNDS rounds of (baseline, keyrouter), each DURATION long, so
# that drift on the shared machine hits both alike; reports medians and the median ratio.
measure() {
  local name=$1 script=$2 services=$3 round b r
  local -a krs=() ratios=() lines=()
  local non2xx=0 sockets=0
  for round in $(seq "$ROUNDS"); do
    b=$(run_wrk json.lua "$BL_PORT" 10 3)
    r=$(run_wrk "$script" "$KR_PORT" "$services" 3)
    krs+=("$(field "$r" rps)"); ratios+=("$(python3 -c "print($(field "$r" rps) / $(field "$b" rps))")")
    lines+=("$(field "$r" rps) $(field "$r" p50_us) $(field "$r" p99_us) $(field "$b" rps)")
    non2xx=$((non2xx + $(field "$r" non2xx))); sockets=$((sockets + $(field "$r" socket_errors)))
  done
  ROWS+=("$(printf '%s\n' "${lines[@]}" | python3 -c "
import statistics, sys
rounds = sorted((list(map(float, l.split())) for l in sys.stdin), key=lambda r: r[0])
median = rounds[len(rounds) // 2]
ratio = statistics.median([$(IFS=,; echo "${ratios[*]}")])
print(f'| $name | {median[0]:.0f} | {statistics.median(r[3] for r in rounds):.0f} | {ratio:.2f}× | '
      f'{median[1] / 1000:.2f} | {median[2] / 1000:.2f} | $non2xx | $sockets |')
")")
  echo "done: $name" >&2
}

gen_services "$WORK/s10x100.toml" 10 100
gen_services "$WORK/s1x1000.toml" 1 1000
gen_services "$WORK/s1x10000.toml" 1 10000
gen_services "$WORK/flip-a.toml" 10 100
gen_services "$WORK/flip-b.toml" 10 97 ":1"

start_baseline
start_keyrouter "$WORK/s10x100.toml"
for scenario in json form query; do
  want "$scenario" || continue
  measure "10 services × 100 nodes, top-3, $scenario" "$scenario.lua" 10
done
stop "$KR_PID"

RSS_KB=0
want size && for size in 1000 10000; do
  start_keyrouter "$WORK/s1x$size.toml"
  measure "1 service × $size nodes, top-3, json" json.lua 1
  if [ "$size" = 10000 ]; then
    RSS_KB=$(sed -n 's/^VmHWM:\s*\([0-9]*\) kB/\1/p' "/proc/$KR_PID/status")
  fi
  stop "$KR_PID"
done

# Small lookups beside heavy batches: the same small JSON lookups alone, then while 4 clients
# send the largest batches the default budget allows over a 10 000-node service.
if want heavy; then
  cp "$WORK/s10x100.toml" "$WORK/heavy.toml"
  gen_services "$WORK/heavy-one.toml" 1 10000
  sed 's/Name = "svc0"/Name = "heavy"/' "$WORK/heavy-one.toml" >> "$WORK/heavy.toml"
  start_keyrouter "$WORK/heavy.toml"
  r=$(run_wrk json.lua "$KR_PORT" 10 3)
  ROWS+=("| small lookups alone (10 × 100 nodes + 1 × 10 000), json | $(printf '%.0f' "$(field "$r" rps)") | | | \
$(python3 -c "print(f'{$(field "$r" p50_us)/1000:.2f} | {$(field "$r" p99_us)/1000:.2f}')") | $(field "$r" non2xx) | $(field "$r" socket_errors) |")
  wrk -t1 -c4 -d"$((DURATION + 2))s" --latency -s "$WRK_DIR/heavy.lua" "http://127.0.0.1:$KR_PORT" \
    > "$WORK/heavy.out" &
  HEAVY=$!; PIDS+=("$HEAVY")
  sleep 1
  r=$(run_wrk json.lua "$KR_PORT" 10 3)
  wait "$HEAVY" || true
  h=$(grep '^RESULT' "$WORK/heavy.out" | sed 's/^RESULT //')
  ROWS+=("| small lookups beside 4 heavy clients, json | $(printf '%.0f' "$(field "$r" rps)") | | | \
$(python3 -c "print(f'{$(field "$r" p50_us)/1000:.2f} | {$(field "$r" p99_us)/1000:.2f}')") | $(field "$r" non2xx) | $(field "$r" socket_errors) |")
  ROWS+=("| the 4 heavy clients (1 000 keys × 100 nodes each; non-2xx are 503 shed) | $(printf '%.1f' "$(field "$h" rps)") | | | \
$(python3 -c "print(f'{$(field "$h" p50_us)/1000:.2f} | {$(field "$h" p99_us)/1000:.2f}')") | $(field "$h" non2xx) | $(field "$h" socket_errors) |")
  stop "$KR_PID"
fi

# Both servers at their own defaults (one worker per CPU each, competing with wrk for the two
# cores), beside the deliberate-workers rows above.
DEFAULT_ROWS=()
if want defaults; then
  stop "$BL_PID"
  start_baseline 0
  start_keyrouter "$WORK/s10x100.toml" 0
  saved=("${ROWS[@]}"); ROWS=()
  measure "10 services × 100 nodes, top-3, json, both at default workers" json.lua 10
  DEFAULT_ROWS=("${ROWS[@]}"); ROWS=("${saved[@]}")
  stop "$KR_PID"
  stop "$BL_PID"
  start_baseline
fi

# Batches: keys answered per second in 1 000-key batches against single-key JSON lookups, on
# the same server, rounds alternating.
BATCH_LINE=""
if want batch; then
  start_keyrouter "$WORK/s10x100.toml"
  singles=(); batches=(); gains=()
  for round in $(seq "$ROUNDS"); do
    r=$(run_wrk json.lua "$KR_PORT" 10 3)
    b=$(run_wrk batch.lua "$KR_PORT" 10 3)
    if [ "$(field "$b" non2xx)" != 0 ] || [ "$(field "$b" socket_errors)" != 0 ]; then
      echo "FAIL: batch requests failed: $b" >&2; exit 1
    fi
    singles+=("$(field "$r" rps)"); batches+=("$(python3 -c "print($(field "$b" rps) * 1000)")")
    gains+=("$(python3 -c "print($(field "$b" rps) * 1000 / $(field "$r" rps))")")
  done
  BATCH_LINE=$(python3 -c "
import statistics
s, b, g = [$(IFS=,; echo "${singles[*]}")], [$(IFS=,; echo "${batches[*]}")], [$(IFS=,; echo "${gains[*]}")]
print(f'batches of 1 000 keys (10 × 100 nodes, top-3): {statistics.median(b):.0f} keys/s against '
      f'{statistics.median(s):.0f} single-key requests/s: {statistics.median(g):.1f}× (median of {len(g)} alternating rounds)')
")
  stop "$KR_PID"
fi

FLIPS=0; RELOAD_ERRORS=0; FAILED_RELOADS=0
if want reload; then
# Reload under load: the file flips between two tables with SIGHUP every 100 ms.
cp "$WORK/flip-a.toml" "$WORK/flip.toml"
start_keyrouter "$WORK/flip.toml"
(
  i=0
  while :; do
    if [ $((i % 2)) = 0 ]; then src=flip-b; else src=flip-a; fi
    cp "$WORK/$src.toml" "$WORK/flip.tmp" && mv "$WORK/flip.tmp" "$WORK/flip.toml"
    kill -HUP "$KR_PID" 2>/dev/null || exit 0
    i=$((i + 1)); echo "$i" > "$WORK/flips"
    sleep 0.1
  done
) &
FLIPPER=$!; PIDS+=("$FLIPPER")
r=$(run_wrk json.lua "$KR_PORT" 10 3)
kill "$FLIPPER"; wait "$FLIPPER" 2>/dev/null || true
FLIPS=$(cat "$WORK/flips")
ROWS+=("| reload under load ($FLIPS SIGHUPs, 10 × 100/97 nodes), json | $(printf '%.0f' "$(field "$r" rps)") | | | \
$(python3 -c "print(f'{$(field "$r" p50_us)/1000:.2f} | {$(field "$r" p99_us)/1000:.2f}')") | $(field "$r" non2xx) | $(field "$r" socket_errors) |")
RELOAD_ERRORS=$(( $(field "$r" non2xx) + $(field "$r" socket_errors) ))
FAILED_RELOADS=$(grep -c "reload failed" "$WORK/keyrouter.log" || true)
stop "$KR_PID"
fi

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds (medians), $WORKERS server worker(s), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
if [ "${#ROWS[@]}" -gt 0 ]; then
  echo "| scenario | keyrouter req/s | baseline req/s | ratio | p50 ms | p99 ms | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
fi
if [ "${#DEFAULT_ROWS[@]}" -gt 0 ]; then
  echo
  echo "Both at their default workers ($(nproc) each on $(nproc) cores, beside wrk):"
  echo
  echo "| scenario | keyrouter req/s | baseline req/s | ratio | p50 ms | p99 ms | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${DEFAULT_ROWS[@]}"
fi
[ -n "$BATCH_LINE" ] && { echo; echo "$BATCH_LINE"; }
echo
echo "peak RSS of keyrouter serving 1 × 10 000 nodes: $((RSS_KB / 1024)) MiB ($RSS_KB kB)"
echo "reload under load: $FLIPS SIGHUPs, $RELOAD_ERRORS failed requests, $FAILED_RELOADS failed reloads"
if [ "$RELOAD_ERRORS" != 0 ] || [ "$FAILED_RELOADS" != 0 ]; then
  echo "FAIL: requests or reloads failed under reload" >&2
  exit 1
fi
