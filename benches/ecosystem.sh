#!/usr/bin/env bash
# Side-by-side load tests of the ecosystem examples on iocore and on tokio (same code):
# hyper (examples/http) with wrk, and the kv server (examples/kv) with redis-benchmark.
# Runtimes alternate run by run; each server gets 1 worker thread pinned to CPU 0 and the
# load generator runs pinned to CPU 1 (on a 2-CPU machine). Prints markdown tables of medians.
#
# Run: bash benches/ecosystem.sh [RUNS]   (needs wrk and redis-benchmark: apt-get install wrk redis-tools)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build --release --features tokio --example http --example kv >/dev/null 2>&1
BIN=target/release/examples
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f\n", v}'; }

start_server() { # bin runtime port
  taskset -c 0 "$BIN/$1" --runtime "$2" --threads 1 --port "$3" >/dev/null 2>&1 &
  echo $! > /tmp/eco_server.pid
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$3") 2>/dev/null && return; sleep 0.05; done
  echo "server $1/$2 did not start" >&2; exit 1
}
stop_server() { kill "$(cat /tmp/eco_server.pid)" 2>/dev/null; wait "$(cat /tmp/eco_server.pid)" 2>/dev/null || true; }

echo "### hyper (HTTP/1.1 GET /, keep-alive): wrk -t1 -c50 -d5s, median of $RUNS runs"
echo
echo "| runtime | req/s | latency p50 | latency p99 |"
echo "|---|---|---|---|"
for rt in iocore tokio; do : > "/tmp/eco_http_$rt"; done
for run in $(seq "$RUNS"); do
  for rt in iocore tokio; do
    start_server http "$rt" 18080
    taskset -c 1 wrk -t1 -c50 -d5s --latency http://127.0.0.1:18080/ > /tmp/eco_wrk.txt
    stop_server
    rps=$(awk '/Requests\/sec/ {print $2}' /tmp/eco_wrk.txt)
    p50=$(awk '$1=="50%" {print $2}' /tmp/eco_wrk.txt)
    p99=$(awk '$1=="99%" {print $2}' /tmp/eco_wrk.txt)
    echo "$rps $p50 $p99" >> "/tmp/eco_http_$rt"
  done
done
for rt in iocore tokio; do
  rps=$(awk '{print $1}' "/tmp/eco_http_$rt" | median)
  p50=$(awk '{print $2}' "/tmp/eco_http_$rt" | to_ms | median)
  p99=$(awk '{print $3}' "/tmp/eco_http_$rt" | to_ms | median)
  echo "| $rt | $rps | ${p50} ms | ${p99} ms |"
done

echo
echo "### kv (RESP): redis-benchmark -c 50 -n 200000, requests/s, median of $RUNS runs"
echo
echo "| test | pipeline | iocore | tokio | ratio |"
echo "|---|---|---|---|---|"
rm -f /tmp/eco_kv_raw
for run in $(seq "$RUNS"); do
  for rt in iocore tokio; do
    start_server kv "$rt" 16379
    for p in 1 16; do
      taskset -c 1 redis-benchmark -p 16379 -t ping,set,get -c 50 -n 200000 -P "$p" -q 2>/dev/null \
        | tr '\r' '\n' | awk -v rt="$rt" -v p="$p" '/requests per second/ {gsub(":","",$1); print rt, p, $1, $2}' >> /tmp/eco_kv_raw
    done
    stop_server
  done
done
for t in PING_INLINE PING_MBULK SET GET; do
  for p in 1 16; do
    a=$(awk -v t="$t" -v p="$p" '$1=="iocore" && $2==p && $3==t {print $4}' /tmp/eco_kv_raw | median)
    b=$(awk -v t="$t" -v p="$p" '$1=="tokio" && $2==p && $3==t {print $4}' /tmp/eco_kv_raw | median)
    [ -n "$a" ] && [ -n "$b" ] && echo "| $t | $p | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a/b}') |"
  done
done
rm -f /tmp/eco_kv_raw
