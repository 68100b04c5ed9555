#!/usr/bin/env bash
# A/B of two keyrouter binaries under wrk, e.g. before and after a change to the allocator:
# a top-3 JSON scenario of run.sh (10 services × 100 nodes unless SERVICES and NODES say otherwise), ROUNDS rounds of DURATION seconds,
# A and B alternating (the order swapped every round), both servers up the whole time.
# Prints each round and the medians, and the median of the per-round ratios B/A, of requests/s
# and of the server's CPU time per request (utime + stime from /proc, less sensitive than
# requests/s to what else runs on a shared machine).
#
#   benches/wrk/ab.sh OLD_BINARY NEW_BINARY           # 5 rounds × 5 s
#   ROUNDS=7 DURATION=10 benches/wrk/ab.sh A B
#   SERVICES=1 NODES=10000 benches/wrk/ab.sh A B      # another table shape
#
# Only 127.0.0.1 is targeted; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1; B=$2
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-1}
SERVICES=${SERVICES:-10}
NODES=${NODES:-100}

source benches/wrk/lib.sh
gen_services "$WORK/services.toml" "$SERVICES" "$NODES"

start() { # BINARY -> sets PORT and SPID
  PORT=$(free_port)
  "$1" --services "$WORK/services.toml" --address "127.0.0.1:$PORT" --workers "$WORKERS" --log-level WARN \
    2>>"$WORK/log" &
  SPID=$!; PIDS+=("$SPID")
  wait_port "$PORT"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # after "pid (comm)": utime + stime
run() { # PORT PID -> "requests/s CPU-µs-per-request"
  local before after out
  before=$(cpu_ticks "$2")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/wrk/json.lua "http://127.0.0.1:$1" -- "$SERVICES" 3 \
    | grep '^RESULT')
  after=$(cpu_ticks "$2")
  python3 -c "
import os
f = dict(kv.split('=') for kv in '$out'.split()[1:])
cpu = ($after - $before) / os.sysconf('SC_CLK_TCK')
print(f'{float(f[\"rps\"]):.1f} {cpu * 1e6 / int(f[\"requests\"]):.2f}')"
}
start "$A"; PORT_A=$PORT; PID_A=$SPID
start "$B"; PORT_B=$PORT; PID_B=$SPID

RESULTS=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then a=$(run "$PORT_A" "$PID_A"); b=$(run "$PORT_B" "$PID_B")
  else b=$(run "$PORT_B" "$PID_B"); a=$(run "$PORT_A" "$PID_A"); fi
  echo "round $round: A $a, B $b (req/s, server CPU µs per request)"
  RESULTS+=("$a $b")
done
printf '%s\n' "${RESULTS[@]}" | python3 -c "
import statistics, sys
r = [list(map(float, l.split())) for l in sys.stdin]
m = lambda xs: statistics.median(xs)
print(f'median req/s: A {m(x[0] for x in r):.0f}, B {m(x[2] for x in r):.0f}, per-round B/A {m(x[2] / x[0] for x in r):.3f}')
print(f'median server CPU per request: A {m(x[1] for x in r):.2f} µs, B {m(x[3] for x in r):.2f} µs, '
      f'per-round B/A {m(x[3] / x[1] for x in r):.3f}')
print(f'({len(r)} rounds × ${DURATION} s, wrk -t1 -c$CONNECTIONS, $WORKERS worker(s), $SERVICES services × $NODES nodes, top-3 JSON)')
"
