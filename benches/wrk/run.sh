#!/usr/bin/env bash
# Load test keyrouter with wrk, against a baseline actix-web server measured in the same run.
#
#   benches/wrk/run.sh                 # every scenario, 10 s each, wrk -t1 -c64
#   DURATION=5 benches/wrk/run.sh      # shorter
#
# Installs wrk if missing, builds release, generates services files, starts each server on a
# free 127.0.0.1 port, runs the scenarios and prints a Markdown table. Everything it starts is
# stopped on exit, even on failure. Only 127.0.0.1 is ever targeted.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
# Server workers, the same for keyrouter and the baseline. On a small machine wrk needs cores
# too: by default the server gets the cores wrk does not use (1 on this 2-core machine, where
# 2 workers fighting wrk for CPU gave ~17 % fewer requests and 2.7x the p99).
WORKERS=${WORKERS:-$(( $(nproc) > THREADS ? $(nproc) - THREADS : 1 ))}
WRK_DIR=benches/wrk

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi

cargo build --release --quiet --bin keyrouter --example baseline
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
KEYROUTER="$TARGET_DIR/release/keyrouter"
BASELINE="$TARGET_DIR/release/examples/baseline"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

# gen_services FILE SERVICES NODES [SALT]: services svc0.. with NODES nodes each.
gen_services() {
  python3 - "$@" <<'PY'
import sys
path, services, nodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
salt = sys.argv[4] if len(sys.argv) > 4 else ""
with open(path, "w") as f:
    for s in range(services):
        names = ", ".join(f'"10.{s % 256}.{n // 256}.{n % 256}:80{salt}"' for n in range(nodes))
        f.write(f'[[Services]]\nName = "svc{s}"\nNodes = [{names}]\n\n')
PY
}

# run_wrk SCRIPT PORT SERVICES MAXNODES -> prints the RESULT line's fields
run_wrk() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WRK_DIR/$1" \
    "http://127.0.0.1:$2" -- "$3" "$4" | grep '^RESULT' | sed 's/^RESULT //'
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

start_keyrouter() { # FILE -> sets KR_PID, KR_PORT
  KR_PORT=$(free_port)
  "$KEYROUTER" --services "$1" --address "127.0.0.1:$KR_PORT" --workers "$WORKERS" --log-level WARN \
    2>>"$WORK/keyrouter.log" &
  KR_PID=$!; PIDS+=("$KR_PID")
  wait_port "$KR_PORT"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

baseline_rps() {
  local port; port=$(free_port)
  "$BASELINE" "127.0.0.1:$port" "$WORKERS" 2>/dev/null &
  local pid=$!; PIDS+=("$pid")
  wait_port "$port"
  local r; r=$(run_wrk json.lua "$port" 10 3)
  stop "$pid"
  echo "$r"
}

ROWS=()
row() { # NAME RESULT BASELINE_RESULT
  local rps p50 p99 ratio=""
  rps=$(field "$2" rps); p50=$(field "$2" p50_us); p99=$(field "$2" p99_us)
  if [ -n "${3:-}" ]; then ratio=$(python3 -c "print(f'{$rps / $(field "$3" rps):.2f}×')"); fi
  ROWS+=("| $1 | $(printf '%.0f' "$rps") | $ratio | $(python3 -c "print(f'{$p50/1000:.2f}')") | $(python3 -c "print(f'{$p99/1000:.2f}')") | $(field "$2" non2xx) | $(field "$2" socket_errors) |")
  echo "done: $1" >&2
}

gen_services "$WORK/s10x100.toml" 10 100
gen_services "$WORK/s1x1000.toml" 1 1000
gen_services "$WORK/s1x10000.toml" 1 10000
gen_services "$WORK/flip-a.toml" 10 100
gen_services "$WORK/flip-b.toml" 10 97 ":1"

# 10 services x 100 nodes: JSON, form and query, each after a baseline run.
start_keyrouter "$WORK/s10x100.toml"
for scenario in json form query; do
  b=$(baseline_rps); row "baseline (actix, fixed answer, JSON)" "$b"
  r=$(run_wrk "$scenario.lua" "$KR_PORT" 10 3); row "10 services × 100 nodes, top-3, $scenario" "$r" "$b"
done
stop "$KR_PID"

for size in 1000 10000; do
  start_keyrouter "$WORK/s1x$size.toml"
  b=$(baseline_rps); row "baseline (actix, fixed answer, JSON)" "$b"
  r=$(run_wrk json.lua "$KR_PORT" 1 3); row "1 service × $size nodes, top-3, json" "$r" "$b"
  if [ "$size" = 10000 ]; then
    RSS_KB=$(sed -n 's/^VmHWM:\s*\([0-9]*\) kB/\1/p' "/proc/$KR_PID/status")
  fi
  stop "$KR_PID"
done

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
row "reload under load ($FLIPS SIGHUPs, 10 × 100/97 nodes), json" "$r"
RELOAD_ERRORS=$(( $(field "$r" non2xx) + $(field "$r" socket_errors) ))
FAILED_RELOADS=$(grep -c "reload failed" "$WORK/keyrouter.log" || true)
stop "$KR_PID"

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $WORKERS server worker(s), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| scenario | requests/s | ratio to baseline | p50 ms | p99 ms | non-2xx | socket errors |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "peak RSS of keyrouter serving 1 × 10 000 nodes: $((RSS_KB / 1024)) MiB ($RSS_KB kB)"
echo "reload under load: $FLIPS SIGHUPs, $RELOAD_ERRORS failed requests, $FAILED_RELOADS failed reloads"
if [ "$RELOAD_ERRORS" != 0 ] || [ "$FAILED_RELOADS" != 0 ]; then
  echo "FAIL: requests or reloads failed under reload" >&2
  exit 1
fi
