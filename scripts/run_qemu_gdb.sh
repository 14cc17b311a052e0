#!/bin/bash
# Boot a Linux guest in QEMU stopped at its first instruction, connect gdb to QEMU's
# gdbstub with the kernel's symbols and the qzn extension, and watch a program's byte
# across the whole machine: its own accesses and the kernel's on its behalf.
#
# gdb reaches the gdbstub through a unix socket in a private (0700) directory, so no
# other user can stand in for it, and through scripts/gdbstub_guard.py, which turns off
# gdb's remote File-I/O (a stub asking gdb to open or write a host file) and tells gdb
# of QEMU's end as the target killed (gdb 13 can abort when the connection just drops
# in the middle of a stop).  gdb auto-loads no scripts (no PROG-gdb.py, no
# vmlinux-gdb.py), and every value pasted into a gdb command is refused if it holds
# control characters and quoted for gdb's own argument splitter.  The log files are made
# 0600, never through a symlink nor over another user's file (sinks/private_files.py).
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
#   --timeout SECONDS      batch: give up after SECONDS (default 600)
#   (--port is gone: the gdbstub is a private unix socket, not a TCP port)
#   --kvm                  use KVM instead of TCG: faster, but only 4 watchpoints and no
#                          read-only ones; it does not work inside these VMs
#   --smp N                virtual CPUs (default 1)
#   --qemu-arg ARG         pass ARG to QEMU (repeatable)
#   --no-fileio-guard      connect gdb straight to the private socket, without
#                          gdbstub_guard.py: about half the cost per hit, but gdb then
#                          serves remote File-I/O (only the QEMU started here can ask),
#                          and a QEMU that dies mid-watch can make gdb abort
#   --gdb-ex CMD           run gdb command CMD after connecting, before the flow (repeatable)
#   -h, --help
# Words after `--` go to qzn-watch (e.g. -- --count 10 --log /tmp/guest).
# Exit status: 0 done; 1 an error, said in one line; 3 the gdbstub never answered, or the
# guest cache is not safe to use; 4 QEMU exited under gdb (the records so far are kept).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
die() { echo "run_qemu_gdb.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

ARCH="" KERNEL="" INITRD="" ROOTFS="" VMLINUX="" YOCTO="" MACHINE="" APPEND=""
SYMBOLS="" COMM="" READY=qzn_ready WATCH='&qzn_byte' GO=qzn_go FLOW=1
KSYMS=1 SMP=1 BATCH=0 WATCHER=qzn PROBE_LOG="" SERIAL_LOG="" TIMEOUT=600 ACCEL=tcg
QEMU_EXTRA=() WATCH_OPTS=() GDB_EXTRA=() FILEIO_GUARD=1
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
        --port|--port=*) die "--port is no longer supported: gdb talks to QEMU over a private unix socket; leave it out" ;;
        --timeout) need "$@"; TIMEOUT="$2"; shift 2 ;;
        --kvm) ACCEL=kvm; shift ;;
        --smp) need "$@"; SMP="$2"; shift 2 ;;
        --qemu-arg) need "$@"; QEMU_EXTRA+=("$2"); shift 2 ;;
        --no-fileio-guard) FILEIO_GUARD=0; shift ;;
        --gdb-ex) need "$@"; GDB_EXTRA+=(-ex "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; WATCH_OPTS=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# --- check every option before anything starts ---------------------------------------
no_control() {  # NAME VALUE: a value pasted into a gdb or QEMU command line
    [[ "$2" != *[[:cntrl:]]* ]] || die "$1 contains control characters; give it on one line without them"
}
positive_number() {  # NAME VALUE
    [[ "$2" =~ ^[0-9]+(\.[0-9]+)?$ && ! "$2" =~ ^[0.]+$ ]] || die "$1 must be a number > 0, not '$2'"
}
case "$WATCHER" in qzn|probe) ;; *) die "--watcher must be qzn or probe, not '$WATCHER'" ;; esac
case "$ARCH" in ""|x86_64|i386) ;; *) die "--arch must be x86_64 or i386, not '$ARCH'" ;; esac
case "$MACHINE" in ""|qemux86|qemux86-64) ;; *) die "--machine must be qemux86 or qemux86-64, not '$MACHINE'" ;; esac
positive_number --timeout "$TIMEOUT"
[[ "$SMP" =~ ^[1-9][0-9]{0,2}$ ]] || die "--smp must be a number of CPUs from 1 to 999, not '$SMP'"
for pair in "--kernel=$KERNEL" "--initrd=$INITRD" "--rootfs=$ROOTFS" "--vmlinux=$VMLINUX" \
        "--yocto=$YOCTO" "--append=$APPEND" "--symbols=$SYMBOLS" "--comm=$COMM" \
        "--ready=$READY" "--watch=$WATCH" "--go=$GO" "--probe-log=$PROBE_LOG" \
        "--serial-log=$SERIAL_LOG"; do
    no_control "${pair%%=*}" "${pair#*=}"
done
for word in "${GDB_EXTRA[@]}"; do no_control --gdb-ex "$word"; done
for word in "${QEMU_EXTRA[@]}"; do no_control --qemu-arg "$word"; done
for word in "${WATCH_OPTS[@]}"; do no_control "the qzn-watch option $(printf %q "$word")" "$word"; done
command -v gdb >/dev/null || die "gdb not found: apt-get install gdb"
PYTHON=/usr/bin/python3  # gdb's own Python, which the flow and gdbstub_guard.py run on
private_file() {  # OPTION FILE: make FILE empty and 0600 as private_files.py does; print
    # its DEVICE:INODE, for the file opened again later to be checked to be this one
    "$PYTHON" -I - "$REPO" "$1" "$2" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from gdb_qznusnih.sinks.private_files import one_line_error, open_private
option, path = sys.argv[2:]
try:
    fd = open_private(path)
except OSError as error:
    sys.exit(f"run_qemu_gdb.sh: {option}: {one_line_error(path, error, option)}")
info = os.fstat(fd)
print(f"{info.st_dev}:{info.st_ino}")
PY
}
reopen_private() {  # OPTION FILE ID: FILE open for appending on fd $REOPENED, checked to be
    # file ID (private_file's): QEMU and gdb are given a descriptor, never a name to look up
    { exec {REOPENED}>>"$2"; } 2>/dev/null || die "$1: cannot write '$2'"
    [ "$(stat -L -c '%d:%i %u %h' "/dev/fd/$REOPENED")" = "$3 $EUID 1" ] \
        || die "$1: '$2' was replaced while starting; run again"
}
# Files written as root are made before anything starts: never through a symlink, never
# another user's file, never in a directory others may write without the sticky bit.
SERIAL_ID="" PROBE_FD=""
[ -z "$SERIAL_LOG" ] || SERIAL_ID="$(private_file --serial-log "$SERIAL_LOG")" || exit 1
if [ -n "$PROBE_LOG" ]; then
    PROBE_ID="$(private_file --probe-log "$PROBE_LOG")" || exit 1
    reopen_private --probe-log "$PROBE_LOG" "$PROBE_ID"
    PROBE_FD=$REOPENED
fi

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
    built=0
    GUEST="$("$HERE/build_guest.sh" --arch "$ARCH" --print-dir)" || built=$?
    if [ "$built" = 1 ]; then  # not built yet
        built=0
        GUEST="$("$HERE/build_guest.sh" --arch "$ARCH" | tail -1)" || built=$?
    fi
    case "$built" in
        0) ;;
        3) exit 3 ;;  # an unsafe cache: build_guest.sh said so in one line
        *) die "building the default $ARCH guest failed" ;;
    esac
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
    x86_64) QEMU=qemu-system-x86_64 ELF_MACHINE="Advanced Micro Devices X86-64" ;;
    i386) QEMU=qemu-system-i386 ELF_MACHINE="Intel 80386" ;;
esac
is_kernel_elf() {  # FILE: an ELF executable for ARCH with the kernel's .init.text section
    local info
    info="$(LC_ALL=C readelf -h -S -W "$1" 2>/dev/null)" || return 1
    grep -q "Type: *EXEC" <<<"$info" && grep -q "Machine: *$ELF_MACHINE\$" <<<"$info" \
        && grep -q " \.init\.text " <<<"$info"
}
command -v readelf >/dev/null || die "readelf not found: apt-get install binutils"
is_kernel_elf "$VMLINUX" || die "--vmlinux '$VMLINUX' is not an ELF Linux kernel for $ARCH: give the kernel build's vmlinux (the bzImage goes to --kernel)"
command -v "$QEMU" >/dev/null || die "$QEMU not found: apt-get install qemu-system-x86"

# --- QEMU ---------------------------------------------------------------------
# The private directory is made under /tmp (root's and sticky), never under $TMPDIR,
# which sudo -E can carry over from a user who could then swap it for their own.
[ "$(stat -c '%u %a' /tmp)" = "0 1777" ] || die "/tmp is not root's with mode 1777; fix it first"
TMP="$(mktemp -d /tmp/qzn-qemu.XXXXXX)"
GDBSTUB="$TMP/gdbstub.sock"
QEMU_PID="" QEMU_WATCHER=""
qemu_running() { [ -n "$QEMU_PID" ] && [ ! -e "$TMP/qemu.status" ]; }
cleanup() {
    if qemu_running; then kill "$QEMU_PID" 2>/dev/null || true; fi
    if [ -n "$QEMU_WATCHER" ]; then wait "$QEMU_WATCHER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$SERIAL_LOG" ] && [ "$BATCH" = 1 ]; then SERIAL_LOG="$TMP/console.log"; fi
CMDLINE="console=ttyS0 nokaslr panic=-1 qzn_wait=0 $APPEND"
QEMU_ARGS=(-nodefaults -no-user-config -nographic -monitor none -m 256M -smp "$SMP"
           -accel "$ACCEL" -kernel "$KERNEL" -no-reboot -S -gdb "unix:$GDBSTUB,server=on,wait=off")
[ -z "$INITRD" ] || QEMU_ARGS+=(-initrd "$INITRD")
if [ -n "$ROOTFS" ]; then
    # In -drive's KEY=VALUE,... syntax a comma in the name is written ",,", and a name
    # like "nbd:..." or "json:{...}" would be a protocol: an absolute path never is.
    [[ "$ROOTFS" == /* ]] || ROOTFS="$PWD/$ROOTFS"
    QEMU_ARGS+=(-drive "file=${ROOTFS//,/,,},if=virtio,format=raw,snapshot=on")
    CMDLINE="root=/dev/vda rw $CMDLINE"
fi
QEMU_ARGS+=(-append "$CMDLINE")
if [ -n "$SERIAL_LOG" ]; then
    [ "$SERIAL_LOG" != "$TMP/console.log" ] || SERIAL_ID="$(private_file --serial-log "$SERIAL_LOG")"
    reopen_private --serial-log "$SERIAL_LOG" "$SERIAL_ID"
    SERIAL_FD=$REOPENED
    QEMU_ARGS+=(-serial "file:/dev/fd/$SERIAL_FD")
else
    QEMU_ARGS+=(-serial "file:/dev/stderr")
fi
QEMU_ARGS+=("${QEMU_EXTRA[@]}")
if [ "$ACCEL" = kvm ]; then
    echo "run_qemu_gdb.sh: KVM: at most 4 watchpoints and no read-only ones" >&2
fi

# A watcher subshell records how QEMU ended in $TMP/qemu.status (and keeps bash's own
# "Killed" notice off the terminal: QEMU's end is told in one line of ours).
{
    "$QEMU" "${QEMU_ARGS[@]}" </dev/null 2>"$TMP/qemu.err" &
    echo $! >"$TMP/qemu.pid"
    ended=0
    wait $! || ended=$?
    echo "$ended" >"$TMP/qemu.status"
} 2>/dev/null &
QEMU_WATCHER=$!
until [ -s "$TMP/qemu.pid" ]; do sleep 0.01; done
QEMU_PID="$(cat "$TMP/qemu.pid")"
gdbstub_gone() {  # one line: how QEMU ended, once it has (waiting up to 2 s)
    local code how
    for _ in $(seq 1 40); do [ -e "$TMP/qemu.status" ] && break; sleep 0.05; done
    if [ ! -e "$TMP/qemu.status" ]; then
        echo "run_qemu_gdb.sh: the gdbstub connection closed while QEMU still ran; QEMU stopped"
        return
    fi
    code="$(cat "$TMP/qemu.status")"
    how="exit status $code"
    [ "$code" -le 128 ] || how="killed by SIG$(kill -l "$((code - 128))")"
    [ ! -s "$TMP/qemu.err" ] || how="$how: $(head -1 "$TMP/qemu.err")"
    echo "run_qemu_gdb.sh: QEMU exited: $how"
}
for _ in $(seq 1 200); do
    [ -S "$GDBSTUB" ] && break
    qemu_running || die "$QEMU failed: $(head -1 "$TMP/qemu.err")"
    sleep 0.05
done
[ -S "$GDBSTUB" ] || die "QEMU never made its gdbstub socket $GDBSTUB"

# --- gdb ----------------------------------------------------------------------
GDB_ARGS=(-nx -q -iex "set pagination off" -iex "set confirm off" -iex "set auto-load off"
          -iex "set remote system-call-allowed 0" -iex "set remote hostio-open-packet off"
          -ex "set width 0"
          -ex "set remotetimeout ${QZN_REMOTE_TIMEOUT:-10}")
gdb_word() {  # one word for gdb's argument splitter (libiberty buildargv), not a shell's:
    local word="${1//\\/\\\\}"  # a backslash escapes, even inside single quotes
    printf "'%s'" "${word//\'/\\\'}"
}
if [ "$KSYMS" = 1 ]; then
    GDB_ARGS+=(-ex "file $(gdb_word "$VMLINUX")")
    [ -z "$SYMBOLS" ] || GDB_ARGS+=(-ex "add-symbol-file $(gdb_word "$SYMBOLS")")
else
    [ -z "$SYMBOLS" ] || GDB_ARGS+=(-ex "file $(gdb_word "$SYMBOLS")")
fi
export QZN_REPO="$REPO" QZN_GDBSTUB="$GDBSTUB" QZN_FILEIO_GUARD="$FILEIO_GUARD" QZN_FLOW="$FLOW" QZN_BATCH="$BATCH"
export QZN_READY="$READY" QZN_COMM="$COMM" QZN_WATCH="$WATCH" QZN_GO="$GO"
export QZN_WATCHER="$WATCHER" QZN_PROBE_LOG_FD="$PROBE_FD" QZN_SYMBOLS="$SYMBOLS"
QZN_WATCH_OPTS=""
[ ${#WATCH_OPTS[@]} = 0 ] || QZN_WATCH_OPTS="$(printf '%q ' "${WATCH_OPTS[@]}")"
export QZN_WATCH_OPTS
GDB_ARGS+=("${GDB_EXTRA[@]}" -x "$HERE/qemu_gdb_flow.py")
echo "run_qemu_gdb.sh: $QEMU ($ACCEL), gdbstub $GDBSTUB, kernel $KERNEL, symbols $VMLINUX" >&2
status=0
if [ "$BATCH" = 1 ]; then
    timeout --foreground -s TERM "$TIMEOUT" gdb -batch "${GDB_ARGS[@]}" </dev/null || status=$?
    [ "$status" != 124 ] || echo "run_qemu_gdb.sh: gave up after $TIMEOUT s (--timeout)" >&2
    if [ "$status" != 3 ]; then  # 3: the stub never answered, already said in one line
        echo "run_qemu_gdb.sh: guest console ($SERIAL_LOG):" >&2
        sed 's/^/  | /' "/dev/fd/$SERIAL_FD" | tail -n 40 >&2
    fi
    # 4: the gdbstub connection closed under gdb (the records so far are in the logs);
    # without kernel symbols the guest's end is the run's end, unless a signal killed QEMU.
    if [ "$status" = 0 ] && [ -e "$TMP/qemu.status" ] && [ "$(cat "$TMP/qemu.status")" -gt 128 ]; then
        status=4
    fi
    [ "$status" != 4 ] || gdbstub_gone >&2
else
    gdb "${GDB_ARGS[@]}" || status=$?
fi
exit "$status"
