#!/usr/bin/env bash
# The demo: start the user_space_tester and watch its byte with `qznusnih watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p build
gcc -g -O0 -o build/user_space_tester tests/c/user_space_tester.c
./build/user_space_tester > build/tester.out &
tester=$!
for _ in $(seq 50); do grep -q byte build/tester.out 2>/dev/null && break; sleep 0.1; done
read -r _ pid _ addr < build/tester.out
echo "demo: tester pid $pid, byte at $addr; logs in build/demo.*" >&2
.venv/bin/qznusnih watch "$addr" "$pid" --color always --log build/demo
wait "$tester"
cat build/tester.out
