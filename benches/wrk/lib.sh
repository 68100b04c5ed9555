# Shared by run.sh and ab.sh (sourced): a work directory and the processes to stop, both cleaned
# up on exit, even on failure; free ports and waiting for a listener on 127.0.0.1 (nothing else
# is ever targeted); and the generated services files.

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
