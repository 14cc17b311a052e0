#!/bin/bash
# Build the default QEMU guest for whole-system mode and cache it.
#
# Usage: scripts/build_guest.sh [--arch x86_64|i386] [--print-dir] [--force]
#
# Kernel: Debian's linux-source-6.1 (apt install linux-source-6.1), `make tinyconfig`
# plus what a serial console, an initramfs, the tester and gdb need (see CONFIG_FRAGMENT).
# Initramfs: /init (tests/c/guest_init.c), /bin/guest_tester (tests/c/guest_tester.c),
# and busybox-static on x86_64.  Both programs are static, non-PIE, -O0 -g.
#
# The result goes to ${XDG_CACHE_HOME:-~/.cache}/qznusnih/<arch>-<key>/, key = hash of
# this script, the C sources and the linux-source package version.  Only bzImage, vmlinux,
# initramfs.cpio.gz, the two programs and manifest.txt are kept.  The last line printed on
# stdout is that directory.  --print-dir prints it without building (exit 1 if not built).
# The cache is used only if no other user can have written it (exit 3 otherwise): the
# directories above it owned by root or you and writable by nobody else (sticky ones such
# as /tmp excepted), the cache itself and every file in the guest's directory yours and
# writable only by you.
set -euo pipefail

ARCH=x86_64
PRINT_ONLY=0
FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || { echo "build_guest.sh: --arch needs a value" >&2; exit 2; }
                ARCH="$2"; shift 2 ;;
        --arch=*) ARCH="${1#--arch=}"; shift ;;
        --print-dir) PRINT_ONLY=1; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_guest.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$ARCH" in
    x86_64) CC_ARCH=(-m64) ;;
    i386) CC_ARCH=(-m32) ;;
    *) echo "build_guest.sh: --arch must be x86_64 or i386, not '$ARCH'" >&2; exit 2 ;;
esac

die() { echo "build_guest.sh: $*" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TESTER_SRC="$REPO/tests/c/guest_tester.c"
INIT_SRC="$REPO/tests/c/guest_init.c"
LINUX_TARBALL=/usr/src/linux-source-6.1.tar.xz

# Options on top of tinyconfig.  "y" enables, "n" disables.
CONFIG_FRAGMENT="
PRINTK=y TTY=y SERIAL_8250=y SERIAL_8250_CONSOLE=y BLK_DEV_INITRD=y RD_GZIP=y
BINFMT_ELF=y BINFMT_SCRIPT=y PROC_FS=y SYSFS=y DEVTMPFS=y
EXPERT=y DEBUG_KERNEL=y DEBUG_INFO_NONE=n DEBUG_INFO_DWARF5=y GDB_SCRIPTS=y
UNWINDER_ORC=n UNWINDER_GUESS=n UNWINDER_FRAME_POINTER=y FRAME_POINTER=y RANDOMIZE_BASE=n
"
[ "$ARCH" = x86_64 ] && CONFIG_FRAGMENT="64BIT=y $CONFIG_FRAGMENT"

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
[ -r "$LINUX_TARBALL" ] || die "$LINUX_TARBALL not found: apt-get install linux-source-6.1"
LINUX_VERSION="$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$LINUX_TARBALL")"
KEY="$( { cat "$0" "$TESTER_SRC" "$INIT_SRC"; echo "$CONFIG_FRAGMENT $LINUX_VERSION $ARCH"; } \
        | sha256sum | cut -c1-12)"
CACHE_ROOT="$(realpath -m "${XDG_CACHE_HOME:-$HOME/.cache}/qznusnih")"
OUT="$CACHE_ROOT/$ARCH-$KEY"

# --- trust the cache only if nobody else can have written it ---------------------
ME="$(id -u)"
refuse_cache() {
    echo "build_guest.sh: refusing the guest cache $CACHE_ROOT: $*;" \
        "set XDG_CACHE_HOME to a directory only you can write" >&2
    exit 3
}
check_above() {  # PATH: every existing directory above it is root's or mine, and only
    local dir="$1" owner mode  # writable by its owner unless sticky (like /tmp)
    while [ "$dir" != / ]; do
        dir="$(dirname "$dir")"
        [ -e "$dir" ] || continue
        read -r owner mode < <(stat -c '%u %a' "$dir")
        [ "$owner" = 0 ] || [ "$owner" = "$ME" ] || refuse_cache "$dir is owned by uid $owner"
        if (( 8#$mode & 8#022 )) && ! (( 8#$mode & 8#1000 )); then
            refuse_cache "$dir is writable by others (mode $mode)"
        fi
    done
}
check_mine() {  # PATH: mine, not a symlink, writable only by me
    local path="$1" owner mode
    [ ! -L "$path" ] || refuse_cache "$path is a symlink"
    read -r owner mode < <(stat -c '%u %a' "$path")
    [ "$owner" = "$ME" ] || refuse_cache "$path is owned by uid $owner, not by you (uid $ME)"
    ! (( 8#$mode & 8#022 )) || refuse_cache "$path is writable by others (mode $mode)"
}
check_cache() {
    check_above "$CACHE_ROOT"
    [ -e "$CACHE_ROOT" ] || return 0
    check_mine "$CACHE_ROOT"
    [ -e "$OUT" ] || return 0
    check_mine "$OUT"
    local entry
    while IFS= read -r -d '' entry; do
        [ -f "$entry" ] || refuse_cache "$entry is not a regular file"
        check_mine "$entry"
    done < <(find "$OUT" -mindepth 1 -print0)
}
check_cache

if [ "$PRINT_ONLY" = 1 ]; then
    [ -f "$OUT/manifest.txt" ] || exit 1
    echo "$OUT"; exit 0
fi
if [ -f "$OUT/manifest.txt" ] && [ "$FORCE" = 0 ]; then
    echo "build_guest.sh: cached" >&2
    echo "$OUT"; exit 0
fi

for tool in gcc make flex bison bc cpio gzip xz; do
    command -v "$tool" >/dev/null || die "'$tool' not found: apt-get install build-essential flex bison bc cpio xz-utils"
done

START=$(date +%s)
mkdir -p -m 0700 "$CACHE_ROOT"
WORK="$(mktemp -d "$CACHE_ROOT/.build-$ARCH-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
exec </dev/null  # never wait for input (CI=true, no stdin)

echo "build_guest.sh: building the $ARCH guest in $WORK" >&2

# --- the programs -----------------------------------------------------------
CFLAGS=("${CC_ARCH[@]}" -static -no-pie -fno-pie -g -O0 -fno-omit-frame-pointer -Wall)
gcc "${CFLAGS[@]}" -o "$WORK/guest_tester" "$TESTER_SRC" \
    || die "cannot build the $ARCH tester (for i386: apt-get install gcc-multilib)"
gcc "${CFLAGS[@]}" -o "$WORK/guest_init" "$INIT_SRC" || die "cannot build the $ARCH init"

# --- the kernel -------------------------------------------------------------
echo "build_guest.sh: unpacking $LINUX_TARBALL" >&2
tar -xJf "$LINUX_TARBALL" -C "$WORK"
SRC="$WORK/linux-source-6.1"
KMAKE=(make -C "$SRC" ARCH="$ARCH" -j"$(nproc)" KCFLAGS=-Wno-error)
"${KMAKE[@]}" -s tinyconfig >&2
for opt in $CONFIG_FRAGMENT; do
    name="${opt%=*}"
    if [ "${opt#*=}" = y ]; then
        "$SRC/scripts/config" --file "$SRC/.config" -e "$name"
    else
        "$SRC/scripts/config" --file "$SRC/.config" -d "$name"
    fi
done
"${KMAKE[@]}" -s olddefconfig >&2
for opt in $CONFIG_FRAGMENT; do
    name="${opt%=*}"
    if [ "${opt#*=}" = y ]; then
        grep -qx "CONFIG_$name=y" "$SRC/.config" || die "CONFIG_$name did not stick in .config"
    else
        ! grep -qx "CONFIG_$name=y" "$SRC/.config" || die "CONFIG_$name is still set in .config"
    fi
done
echo "build_guest.sh: make bzImage vmlinux (2-3 minutes on 2 cores)" >&2
"${KMAKE[@]}" -s bzImage vmlinux >&2 || die "kernel build failed"

# --- the initramfs ----------------------------------------------------------
LIST="$WORK/initramfs.list"
{
    echo "dir /dev 0755 0 0"
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "dir /proc 0755 0 0"
    echo "dir /sys 0755 0 0"
    echo "dir /bin 0755 0 0"
    echo "dir /tmp 1777 0 0"
    echo "file /init $WORK/guest_init 0755 0 0"
    echo "file /bin/guest_tester $WORK/guest_tester 0755 0 0"
    if [ "$ARCH" = x86_64 ] && [ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked'; then
        echo "file /bin/busybox /bin/busybox 0755 0 0"
        for applet in sh ls cat ps dmesg mount poweroff reboot; do
            echo "slink /bin/$applet busybox 0777 0 0"
        done
    fi
} >"$LIST"
"$SRC/usr/gen_init_cpio" "$LIST" | gzip -9 >"$WORK/initramfs.cpio.gz"

# --- keep only what is needed ----------------------------------------------
STAGE="$WORK/out"
mkdir -p "$STAGE"
cp "$SRC/arch/x86/boot/bzImage" "$SRC/vmlinux" "$WORK/initramfs.cpio.gz" \
   "$WORK/guest_tester" "$WORK/guest_init" "$STAGE/"
cp "$SRC/.config" "$STAGE/kernel.config"
END=$(date +%s)
{
    echo "arch=$ARCH"
    echo "key=$KEY"
    echo "linux_source=$LINUX_VERSION"
    echo "kernel_release=$(cat "$SRC/include/config/kernel.release" 2>/dev/null || echo unknown)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_seconds=$((END - START))"
    echo "bzImage=bzImage"
    echo "vmlinux=vmlinux"
    echo "initrd=initramfs.cpio.gz"
    echo "tester=guest_tester"
} >"$STAGE/manifest.txt"
rm -rf "$OUT"
mv "$STAGE" "$OUT"
echo "build_guest.sh: built in $((END - START)) s" >&2
echo "$OUT"
