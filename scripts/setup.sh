#!/usr/bin/env bash
# Install what gdb-qznusnih needs on Debian/Ubuntu, then a venv with the package.
# Usage: scripts/setup.sh [--dev] [--qemu]
#   --dev   also the test tools (pytest, hypothesis, ruff, gcc-multilib, chromium, perf, strace)
#   --qemu  also what the whole-system mode needs (QEMU, kernel source, busybox)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0 qemu=0
for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        --qemu) qemu=1 ;;
        *) echo "setup.sh: unknown option $arg (use --dev, --qemu)" >&2; exit 2 ;;
    esac
done

packages=(gdb gcc libc6-dev python3 python3-venv python3-pygments)
((dev)) && packages+=(gcc-multilib chromium valgrind binutils linux-perf strace gdbserver)
((qemu)) && packages+=(qemu-system-x86 linux-source-6.1 busybox-static flex bison bc
                        libelf-dev libssl-dev cpio xz-utils make)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# gdb embeds /usr/bin/python3; a venv of that same Python keeps the installed
# package importable from gdb.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ((dev)); then
    .venv/bin/python -m pip install -q -e ".[dev]"
else
    .venv/bin/python -m pip install -q .
fi
