"""A program we did not write, checked against an independent oracle.

BSD unifdef (scripts/unifdef.c in Debian's linux-source-6.1), built -O2, runs under
`qznusnih run` watching its global `linenum`; valgrind's lackey tool traces every load
and store of the same run.  The counts by kind must agree exactly.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import quiet_env

pytestmark = pytest.mark.gdb

LINUX_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
MEMBER = "linux-source-6.1/scripts/unifdef.c"


def need(condition: bool, what: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing: scripts/setup.sh --dev --qemu installs it")
        pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def unifdef(tmp_path_factory) -> Path:
    need(LINUX_SOURCE.exists(), "linux-source-6.1")
    need(shutil.which("valgrind") is not None, "valgrind")
    work = tmp_path_factory.mktemp("unifdef")
    with tarfile.open(LINUX_SOURCE) as tar:
        source = tar.extractfile(MEMBER).read()
    (work / "unifdef.c").write_bytes(source)
    exe = work / "unifdef"
    cmd = ["gcc", "-g", "-O2", "-no-pie", "-o", str(exe), str(work / "unifdef.c")]
    subprocess.run(cmd, check=True)
    # Input: a real header with nested conditionals.
    (work / "in.h").write_bytes(Path("/usr/include/stdio.h").read_bytes())
    return exe


def lackey_counts(exe: Path, args: list[str], address: int, length: int, log: Path):
    subprocess.run(
        ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", str(exe), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    counts = collections.Counter()
    with open(log) as trace:
        for line in trace:
            if not line.startswith(" ") or "," not in line:
                continue
            op, where = line.split()
            start, size = (int(x, 16) if i == 0 else int(x) for i, x in enumerate(where.split(",")))
            if start < address + length and address < start + size:
                counts["read"] += op in ("L", "M")
                counts["write"] += op in ("S", "M")
    return counts


def test_unifdef_counts_match_valgrind(unifdef):
    args = ["-D__USE_GNU", "-U__cplusplus", str(unifdef.parent / "in.h")]
    nm = subprocess.run(["nm", str(unifdef)], capture_output=True, text=True, check=True).stdout
    address = int(next(x.split()[0] for x in nm.splitlines() if x.endswith(" linenum")), 16)
    prefix = unifdef.parent / "q"
    launcher = subprocess.run(
        [sys.executable, "-m", "gdb_qznusnih", "run", "--quiet", "--len", "4",
         "--log", str(prefix), "--watch", "&linenum", "--", str(unifdef), *args],
        capture_output=True, text=True, env=quiet_env(), timeout=600,
    )  # fmt: skip
    assert "Traceback" not in launcher.stderr
    records = [json.loads(x) for x in prefix.with_suffix(".jsonl").read_text().splitlines()]
    ours = collections.Counter(r["kind"] for r in records)
    oracle = lackey_counts(unifdef, args, address, 4, unifdef.parent / "lackey.txt")
    print(f"unifdef linenum: qznusnih {dict(ours)}, valgrind lackey {dict(oracle)}")
    assert oracle["read"] > 100 and oracle["write"] > 100
    assert ours == oracle
    assert all(r["kind_from"] == "insn" for r in records)
