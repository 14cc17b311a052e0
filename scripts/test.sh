#!/usr/bin/env bash
# The whole test suite: unit tests, real-gdb tests, the minute's soak and the QEMU tests (no marker deselected).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev --qemu
exec .venv/bin/python -m pytest -q "$@"
