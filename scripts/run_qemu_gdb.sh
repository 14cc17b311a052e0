#!/bin/bash
# Boot a Linux guest in QEMU stopped at its first instruction, connect gdb to QEMU's
# gdbstub with the kernel's symbols and the qzn extension, and watch a program's byte
# across the whole machine: its own accesses and the kernel's on its behalf.
#
# Usage: scripts/run_qemu_gdb.sh [OPTIONS] [-- QZN-WATCH OPTIONS]
#
# Guest (pick one; default: the built-in guest, built and cached by build_guest.sh):
#   --arch x86_64|i386     built-in guest's architecture (default x86_64)
#   --kernel FILE          a bzImage, with --vmlinux FILE (its symbols) and
#   --initrd FILE          an initramfs, and/or --rootfs FILE (raw/ext4 disk, root=/dev/vda)
#   --yocto BUILDDIR       a Yocto build: bzImage, *.ext4 rootfs (or *.cpio.gz) from
#                          tmp/deploy/images/qemux86*/ (--machine picks one), vmlinux
#                          searched in this order:
#                            tmp/deploy/images/MACHINE/vmlinux*
#                            tmp/work/MACHINE*/linux-yocto*/*/linux-MACHINE*-build/vmlinux
#                            (MACHINE with "_" for "-", e.g. qemux86_64), then any
#                            tmp/work/*/linux-yocto*/*/linux-*-build/vmlinux
#                            tmp/work-shared/MACHINE/kernel-build-artifacts/vmlinux
#                          (add `KERNEL_IMAGETYPES += "vmlinux"` to local.conf if none)
#   --machine NAME         qemux86 (i386) or qemux86-64 (x86_64); default: the one found
#   --append ARGS          more kernel command-line arguments
# Program to watch:
#   --symbols FILE         the program's ELF with symbols (static non-PIE, or loaded at
#                          its link address); built-in guest: guest_tester
#   --comm NAME            its process name (default: basename of --symbols)
#   --ready FUNC           function where it waits for the debugger (default qzn_ready)
#   --watch EXPR           what to watch (default &qzn_byte)
#   --go VAR               set VAR=1 once armed, "" for none (default qzn_go)
#   --no-flow              only connect; no ready breakpoint, no watch
#   --no-kernel-symbols    do not load vmlinux: hits are then told apart by address
#                          space (cr3) instead of by task (for testing that fallback)
# Running:
#   --batch                non-interactive: run until the program exits or a stop
#                          condition (qzn-watch --count/--duration), print the summary,
#                          kill QEMU and exit
#   --watcher qzn|probe    qzn: qzn-watch (default); probe: a plain access watchpoint
#                          logging KernelView's context (see scripts/qemu_gdb_flow.py)
#   --probe-log FILE       JSON Lines of the probe watcher
#   --serial-log FILE      guest console to FILE (default: the terminal in interactive
#                          mode, a temporary file shown at the end in batch mode)
#   --port N               gdbstub port (default: a free one); in use = error
#   --timeout SECONDS      batch: give up after SECONDS (default 600)
#   --kvm                  use KVM instead of TCG: faster, but only 4 watchpoints and no
#                          read-only ones; it does not work inside these VMs
#   --smp N                virtual CPUs (default 1)
#   --qemu-arg ARG         pass ARG to QEMU (repeatable)
#   --gdb-ex CMD           run gdb command CMD after connecting, before the flow (repeatable)
#   -h, --help
# Words after `--` go to qzn-watch (e.g. -- --count 10 --log /tmp/guest).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
die() { echo "run_qemu_gdb.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

ARCH="" KERNEL="" INITRD="" ROOTFS="" VMLINUX="" YOCTO="" MACHINE="" APPEND=""
SYMBOLS="" COMM="" READY=qzn_ready WATCH='&qzn_byte' GO=qzn_go FLOW=1
KSYMS=1 SMP=1 BATCH=0 WATCHER=qzn PROBE_LOG="" SERIAL_LOG="" PORT="" TIMEOUT=600 ACCEL=tcg
QEMU_EXTRA=() WATCH_OPTS=() GDB_EXTRA=()
need() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) need "$@"; ARCH="$2"; shift 2 ;;
        --kernel) need "$@"; KERNEL="$2"; shift 2 ;;
        --initrd) need "$@"; INITRD="$2"; shift 2 ;;
        --rootfs) need "$@"; ROOTFS="$2"; shift 2 ;;
        --vmlinux) need "$@"; VMLINUX="$2"; shift 2 ;;
        --yocto) need "$@"; YOCTO="$2"; shift 2 ;;
        --machine) need "$@"; MACHINE="$2"; shift 2 ;;
        --append) need "$@"; APPEND="$2"; shift 2 ;;
        --symbols) need "$@"; SYMBOLS="$2"; shift 2 ;;
        --comm) need "$@"; COMM="$2"; shift 2 ;;
        --ready) need "$@"; READY="$2"; shift 2 ;;
        --watch) need "$@"; WATCH="$2"; shift 2 ;;
        --go) need "$@"; GO="$2"; shift 2 ;;
        --no-flow) FLOW=0; shift ;;
        --no-kernel-symbols) KSYMS=0; shift ;;
        --batch) BATCH=1; shift ;;
        --watcher) need "$@"; WATCHER="$2"; shift 2 ;;
        --probe-log) need "$@"; PROBE_LOG="$2"; shift 2 ;;
        --serial-log) need "$@"; SERIAL_LOG="$2"; shift 2 ;;
        --port) need "$@"; PORT="$2"; shift 2 ;;
        --timeout) need "$@"; TIMEOUT="$2"; shift 2 ;;
        --kvm) ACCEL=kvm; shift ;;
        --smp) need "$@"; SMP="$2"; shift 2 ;;
        --qemu-arg) need "$@"; QEMU_EXTRA+=("$2"); shift 2 ;;
        --gdb-ex) need "$@"; GDB_EXTRA+=(-ex "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; WATCH_OPTS=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$WATCHER" in qzn|probe) ;; *) die "--watcher must be qzn or probe" ;; esac
command -v gdb >/dev/null || die "gdb not found: apt-get install gdb"

# --- find the guest ----------------------------------------------------------
if [ -n "$YOCTO" ]; then
    [ -d "$YOCTO/tmp/deploy/images" ] || die "$YOCTO is not a Yocto build directory (no tmp/deploy/images)"
    if [ -z "$MACHINE" ]; then
        for candidate in qemux86-64 qemux86; do
            [ -d "$YOCTO/tmp/deploy/images/$candidate" ] && { MACHINE=$candidate; break; }
        done
        [ -n "$MACHINE" ] || die "no tmp/deploy/images/qemux86*/ in $YOCTO"
    fi
    DEPLOY="$YOCTO/tmp/deploy/images/$MACHINE"
    [ -n "$KERNEL" ] || KERNEL="$(ls -1 "$DEPLOY"/bzImage 2>/dev/null | head -1)"
    if [ -z "$ROOTFS" ] && [ -z "$INITRD" ]; then
        ROOTFS="$(ls -1t "$DEPLOY"/*"$MACHINE".ext4 "$DEPLOY"/*"$MACHINE".rootfs.ext4 2>/dev/null | head -1 || true)"
        [ -n "$ROOTFS" ] || INITRD="$(ls -1t "$DEPLOY"/*.cpio.gz 2>/dev/null | head -1 || true)"
    fi
    if [ -z "$VMLINUX" ]; then
        VMLINUX="$( { ls -1 "$DEPLOY"/vmlinux* \
            "$YOCTO"/tmp/work/"${MACHINE//-/_}"*/linux-yocto*/*/linux-"${MACHINE//-/_}"*-build/vmlinux \
            "$YOCTO"/tmp/work/*/linux-yocto*/*/linux-*-build/vmlinux \
            "$YOCTO"/tmp/work-shared/"$MACHINE"/kernel-build-artifacts/vmlinux; } 2>/dev/null | head -1 || true)"
    fi
    [ -n "$VMLINUX" ] || die "no vmlinux found in $YOCTO (see --help for where it is searched)"
    [ -n "$ARCH" ] || { [ "$MACHINE" = qemux86 ] && ARCH=i386 || ARCH=x86_64; }
    [ -n "$COMM" ] || [ -n "$SYMBOLS" ] || FLOW=0  # no known program: just connect
elif [ -z "$KERNEL" ]; then
    ARCH="${ARCH:-x86_64}"
    GUEST="$("$HERE/build_guest.sh" --arch "$ARCH" --print-dir)" \
        || GUEST="$("$HERE/build_guest.sh" --arch "$ARCH" | tail -1)" \
        || die "building the default $ARCH guest failed"
    KERNEL="$GUEST/bzImage" INITRD="$GUEST/initramfs.cpio.gz" VMLINUX="$GUEST/vmlinux"
    [ -n "$SYMBOLS" ] || SYMBOLS="$GUEST/guest_tester"
else
    [ -n "$ARCH" ] || { file -L "${VMLINUX:-/dev/null}" 2>/dev/null | grep -q 'ELF 32-bit' && ARCH=i386 || ARCH=x86_64; }
    [ -n "$COMM" ] || [ -n "$SYMBOLS" ] || FLOW=0
fi
[ -n "$KERNEL" ] && [ -f "$KERNEL" ] || die "kernel image not found: '${KERNEL:-none}' (give --kernel FILE)"
[ -n "$VMLINUX" ] && [ -f "$VMLINUX" ] || die "vmlinux not found: '${VMLINUX:-none}' (give --vmlinux FILE)"
[ -z "$INITRD" ] || [ -f "$INITRD" ] || die "initrd not found: '$INITRD'"
[ -z "$ROOTFS" ] || [ -f "$ROOTFS" ] || die "rootfs not found: '$ROOTFS'"
[ -z "$SYMBOLS" ] || [ -f "$SYMBOLS" ] || die "program symbols not found: '$SYMBOLS'"
[ -n "$COMM" ] || COMM="$(basename "${SYMBOLS:-none}")"
case "$ARCH" in
    x86_64) QEMU=qemu-system-x86_64 ;;
    i386) QEMU=qemu-system-i386 ;;
    *) die "--arch must be x86_64 or i386, not '$ARCH'" ;;
esac
command -v "$QEMU" >/dev/null || die "$QEMU not found: apt-get install qemu-system-x86"

# --- the port -----------------------------------------------------------------
port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
if [ -n "$PORT" ]; then
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, not '$PORT'"
    ! port_in_use "$PORT" || die "port $PORT is in use; pick another with --port or leave it out"
else
    PORT="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi

# --- QEMU ---------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/qzn-qemu.XXXXXX")"
QEMU_PID=""
cleanup() {
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$SERIAL_LOG" ] && [ "$BATCH" = 1 ]; then SERIAL_LOG="$TMP/console.log"; fi
CMDLINE="console=ttyS0 nokaslr panic=-1 qzn_wait=0 $APPEND"
QEMU_ARGS=(-nodefaults -no-user-config -nographic -monitor none -m 256M -smp "$SMP"
           -accel "$ACCEL" -kernel "$KERNEL" -no-reboot -S -gdb "tcp:127.0.0.1:$PORT")
[ -z "$INITRD" ] || QEMU_ARGS+=(-initrd "$INITRD")
if [ -n "$ROOTFS" ]; then
    QEMU_ARGS+=(-drive "file=$ROOTFS,if=virtio,format=raw,snapshot=on")
    CMDLINE="root=/dev/vda rw $CMDLINE"
fi
QEMU_ARGS+=(-append "$CMDLINE")
if [ -n "$SERIAL_LOG" ]; then
    : >"$SERIAL_LOG" || die "cannot write the console log '$SERIAL_LOG'"
    QEMU_ARGS+=(-serial "file:$SERIAL_LOG")
else
    QEMU_ARGS+=(-serial "file:/dev/stderr")
fi
QEMU_ARGS+=("${QEMU_EXTRA[@]}")
if [ "$ACCEL" = kvm ]; then
    echo "run_qemu_gdb.sh: KVM: at most 4 watchpoints and no read-only ones" >&2
fi

"$QEMU" "${QEMU_ARGS[@]}" </dev/null 2>"$TMP/qemu.err" &
QEMU_PID=$!
for _ in $(seq 1 100); do
    port_in_use "$PORT" && break
    kill -0 "$QEMU_PID" 2>/dev/null || die "$QEMU failed: $(head -1 "$TMP/qemu.err")"
    sleep 0.1
done
port_in_use "$PORT" || die "QEMU's gdbstub never answered on port $PORT"

# --- gdb ----------------------------------------------------------------------
GDB_ARGS=(-nx -q -iex "set pagination off" -iex "set confirm off"
          -iex "set auto-load safe-path /" -ex "set width 0"
          -ex "set remotetimeout ${QZN_REMOTE_TIMEOUT:-10}")
if [ "$KSYMS" = 1 ]; then
    GDB_ARGS+=(-ex "file $VMLINUX")
    [ -z "$SYMBOLS" ] || GDB_ARGS+=(-ex "add-symbol-file $SYMBOLS")
else
    [ -z "$SYMBOLS" ] || GDB_ARGS+=(-ex "file $SYMBOLS")
fi
export QZN_REPO="$REPO" QZN_PORT="$PORT" QZN_FLOW="$FLOW" QZN_BATCH="$BATCH"
export QZN_READY="$READY" QZN_COMM="$COMM" QZN_WATCH="$WATCH" QZN_GO="$GO"
export QZN_WATCHER="$WATCHER" QZN_PROBE_LOG="$PROBE_LOG" QZN_SYMBOLS="$SYMBOLS"
QZN_WATCH_OPTS=""
[ ${#WATCH_OPTS[@]} = 0 ] || QZN_WATCH_OPTS="$(printf '%q ' "${WATCH_OPTS[@]}")"
export QZN_WATCH_OPTS
GDB_ARGS+=("${GDB_EXTRA[@]}" -x "$HERE/qemu_gdb_flow.py")
echo "run_qemu_gdb.sh: $QEMU ($ACCEL) on port $PORT, kernel $KERNEL, symbols $VMLINUX" >&2
status=0
if [ "$BATCH" = 1 ]; then
    timeout --foreground -s TERM "$TIMEOUT" gdb -batch "${GDB_ARGS[@]}" </dev/null || status=$?
    [ "$status" != 124 ] || echo "run_qemu_gdb.sh: gave up after $TIMEOUT s (--timeout)" >&2
    if [ "$status" != 3 ]; then  # 3: the stub never answered, already said in one line
        echo "run_qemu_gdb.sh: guest console ($SERIAL_LOG):" >&2
        sed 's/^/  | /' "$SERIAL_LOG" | tail -n 40 >&2
    fi
else
    gdb "${GDB_ARGS[@]}" || status=$?
fi
exit "$status"
