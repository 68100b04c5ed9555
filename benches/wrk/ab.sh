#!/usr/bin/env bash
# A/B of two keyrouter binaries under wrk, e.g. before and after a change to the allocator:
# the 10 services × 100 nodes top-3 JSON scenario of run.sh, ROUNDS rounds of DURATION seconds,
# A and B alternating (the order swapped every round), both servers up the whole time.
# Prints each round and the medians, and the median of the per-round ratios B/A.
#
#   benches/wrk/ab.sh OLD_BINARY NEW_BINARY           # 5 rounds × 5 s
#   ROUNDS=7 DURATION=10 benches/wrk/ab.sh A B
#
# Only 127.0.0.1 is targeted; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1; B=$2
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-1}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$WORK/s10x100.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for s in range(10):
        names = ", ".join(f'"10.{s}.{n // 256}.{n % 256}:80"' for n in range(100))
        f.write(f'[[Services]]\nName = "svc{s}"\nNodes = [{names}]\n\n')
PY

start() { # BINARY -> prints the port
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$1" --services "$WORK/s10x100.toml" --address "127.0.0.1:$port" --workers "$WORKERS" --log-level WARN \
    2>>"$WORK/log" &
  PIDS+=("$!")
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  PORT=$port
}
rps() { # PORT
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/wrk/json.lua "http://127.0.0.1:$1" -- 10 3 \
    | sed -n 's/^RESULT .*rps=\([0-9.]*\).*/\1/p'
}
start "$A"; PORT_A=$PORT
start "$B"; PORT_B=$PORT

RESULTS=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then a=$(rps "$PORT_A"); b=$(rps "$PORT_B")
  else b=$(rps "$PORT_B"); a=$(rps "$PORT_A"); fi
  echo "round $round: A $a req/s, B $b req/s, B/A $(python3 -c "print(f'{$b / $a:.3f}')")"
  RESULTS+=("$a $b")
done
printf '%s\n' "${RESULTS[@]}" | python3 -c "
import statistics, sys
rounds = [list(map(float, l.split())) for l in sys.stdin]
a = statistics.median(r[0] for r in rounds); b = statistics.median(r[1] for r in rounds)
ratio = statistics.median(r[1] / r[0] for r in rounds)
print(f'median: A {a:.0f} req/s, B {b:.0f} req/s; median of per-round B/A: {ratio:.3f} ({len(rounds)} rounds × ${DURATION} s, wrk -t1 -c$CONNECTIONS, $WORKERS worker(s))')
"
