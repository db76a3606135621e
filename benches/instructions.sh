#!/usr/bin/env bash
# User-space instructions per message of each message-benchmark server, counted by
# valgrind's callgrind: a deterministic measure of the runtime's own work (the kernel's
# is not counted), where timings on a shared machine swing by ±10 %. Each server runs
# under callgrind twice, for 20k and for 60k messages of a scenario from a tokio client;
# the difference divided by the 40k messages cancels startup and connection setup. The
# floor (a hand-written mio loop) is the reference: a runtime's instructions above the
# floor's are its overhead. Under callgrind a server runs ~50x slower, so only the count
# means anything, not the rates the client prints. iocore's and tokio's counts repeat to
# within a few instructions; the floor's and smol's vary by ±10 % between runs (what they
# do while waiting depends on timing).
#
# Run: bash benches/instructions.sh [SCENARIO [THREADS [CONNECTIONS]]]   (default:
# single 1 1; needs valgrind: apt-get install valgrind). Prints a markdown table. The
# server gets the options its scenario needs (churn: a 2 s idle timeout per read; hog: the
# 2 ms burn), or SERVER_ARGS from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-single}
THREADS=${2:-1}
# One connection by default: every message is then one event, one recv and one send, so
# the count does not depend on how many messages the timing let pile up per system call
# (with the scenario's 100 connections it does, by ±10 %).
CONNECTIONS=${3:-1}
# The server options a scenario needs (as `msgbench compare` passes them); SERVER_ARGS in
# the environment overrides.
case "$SCENARIO" in
  churn) default_args="--read-timeout-ms 2000" ;;
  hog|hog1) default_args="--hog-burn-us 2000" ;;
  *) default_args="" ;;
esac
SERVER_ARGS=${SERVER_ARGS-$default_args}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cargo bench --bench msgbench --no-run >/dev/null 2>&1
BIN=$(ls -t target/release/deps/msgbench-* | grep -v '\.d$' | head -1)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# instructions RUNTIME MESSAGES: prints "instructions messages" of one run.
instructions() {
  local port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
    "$BIN" server --runtime "$1" --threads "$THREADS" --port "$port" $SERVER_ARGS >/dev/null 2>"$OUT/vg.err" &
  local vg=$!
  local got=""
  for _ in $(seq 200); do
    got=$("$BIN" client --runtime tokio --scenario "$SCENARIO" --connections "$CONNECTIONS" --target "$2" --port "$port" 2>/dev/null \
      | sed -n 's/^RESULT total=\([0-9]*\).*/\1/p') && [ -n "$got" ] && break
    sleep 0.1
  done
  kill -TERM "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  echo "$(awk '/Collected/ {print $4}' "$OUT/vg.err") ${got:-0}"
}

runtimes="floor iocore tokio-ct smol"
[ "$THREADS" = 1 ] || runtimes="iocore tokio smol"
echo "### User-space instructions per message: \`$SCENARIO\`, $THREADS server thread(s), $CONNECTIONS connection(s), client tokio${SERVER_ARGS:+, server $SERVER_ARGS}"
echo
echo "| server | instructions/msg |"
echo "|---|---|"
for rt in $runtimes; do
  read -r i1 m1 < <(instructions "$rt" 20000)
  read -r i2 m2 < <(instructions "$rt" 60000)
  if [ -n "$i1" ] && [ -n "$i2" ] && [ "$m2" -gt "$m1" ]; then
    echo "| $rt | $(( (i2 - i1) / (m2 - m1) )) |"
  else
    echo "| $rt | (run failed) |"
  fi
done
