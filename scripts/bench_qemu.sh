#!/bin/bash
# Cost per hit in whole-system mode: the tester runs ROUNDS rounds of 4 watched
# accesses (user write, user read, kernel write, kernel read); the host times each
# run from arming the watch to the tester's exit (the guest's own clock stops while
# gdb holds the machine, so it cannot tell); each run watches differently.
#
# Usage: scripts/bench_qemu.sh [--arch x86_64|i386] [--rounds N]
#
#   unwatched   no watch: the guest's own speed under TCG (its own clock)
#   floor       a watchpoint whose stop() returns False at once: gdb + gdbstub cost
#   context     ... plus KernelView.hit_context() (mode, pid, comm, --pid filter)
#   probe       ... plus gdb's kernel frames, cut at the entry, and the user frames
#   qzn-watch   qzn-watch --pid --quiet: classification, records, summary
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ARCH=x86_64 ROUNDS=200
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_qemu.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

report() {  # NAME SECONDS
    local name="$1" seconds="$2" hits=$((ROUNDS * 4 + 6))
    if [ -z "$seconds" ]; then
        printf '%-10s failed\n' "$name"
        return
    fi
    awk -v n="$name" -v hits="$hits" -v s="$seconds" \
        'BEGIN { printf "%-10s %6d hits in %7.3f s: %7.3f ms per hit\n", n, hits, s, s * 1000 / hits }'
}

run() {  # NAME [run_qemu_gdb.sh args...]
    local name="$1"
    shift
    "$HERE/run_qemu_gdb.sh" --arch "$ARCH" --batch --timeout 1800 --serial-log "$TMP/$name.console" \
        --append "qzn_rounds=$ROUNDS" "$@" >"$TMP/$name.out" 2>&1 || true
    report "$name" "$(sed -n 's/.*exited \([0-9.]*\) s after arming.*/\1/p' "$TMP/$name.out" | tail -1)"
}

unwatched() {
    local guest
    guest="$("$HERE/build_guest.sh" --arch "$ARCH" --print-dir)" || { echo "no $ARCH guest: scripts/build_guest.sh --arch $ARCH" >&2; exit 1; }
    "qemu-system-$ARCH" -nodefaults -no-user-config -nographic -monitor none -m 256M \
        -accel tcg -no-reboot -kernel "$guest/bzImage" -initrd "$guest/initramfs.cpio.gz" \
        -append "console=ttyS0 nokaslr panic=-1 qzn_rounds=$ROUNDS" \
        -serial "file:$TMP/unwatched.console" </dev/null >/dev/null 2>&1 || true
    report unwatched "$(sed -n 's/.*bench: .* hits in \([0-9.]*\) s.*/\1/p' "$TMP/unwatched.console")"
}

echo "bench_qemu.sh: $ARCH, $ROUNDS rounds of 4 hits"
unwatched
QZN_PROBE_WORK=none run floor --watcher probe
QZN_PROBE_WORK=context run context --watcher probe
QZN_BT_DEPTH=16 run probe --watcher probe
run qzn-watch -- --quiet --color never
