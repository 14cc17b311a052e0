#!/usr/bin/env bash
# The demo: start the user_space_tester and watch its byte with `qznusnih watch`.
# The tester waits for a byte on its stdin, sent once the watch is armed: the perf engine
# (the default as root) never traces it, so it cannot wait for a tracer as gdb's would.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p build
gcc -g -O0 -o build/user_space_tester tests/c/user_space_tester.c
exec {go}> >(exec ./build/user_space_tester --wait-go --rounds 3 --interval-ms 100 > build/tester.out)
tester=$!
for _ in $(seq 50); do grep -q byte build/tester.out 2>/dev/null && break; sleep 0.1; done
read -r _ pid _ addr < build/tester.out
echo "demo: tester pid $pid, byte at $addr; logs in build/demo.*" >&2
: > build/demo.err
.venv/bin/qznusnih watch "$addr" "$pid" --color always --log build/demo 2> >(tee build/demo.err >&2) &
watcher=$!
for _ in $(seq 300); do
    grep -q "watch 1: " build/demo.err && break
    kill -0 "$watcher" 2>/dev/null || break  # it failed to arm: its error is on stderr
    sleep 0.1
done
echo go >&"$go"
exec {go}>&-
status=0
wait "$watcher" || status=$?
wait "$tester" || true
cat build/tester.out
exit "$status"
