"""qzn-watch's own checks on its log files, with no launcher preflight in front of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.gdb.conftest import run_attached
from tests.records import block_seqs, read_jsonl

pytestmark = pytest.mark.gdb

SECRET = "root's own file\n"


@pytest.fixture
def shared_tmp():
    """(a sticky world-writable directory, a root-owned file outside it)."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    top = Path(tempfile.mkdtemp(prefix="qzn-shared-"))
    top.chmod(0o755)
    shared = top / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    precious = top / "precious"
    precious.write_text(SECRET)
    yield shared, precious
    shutil.rmtree(top)


def test_qzn_watch_refuses_a_symlink_planted_by_nobody(tester, shared_tmp):
    shared, precious = shared_tmp
    subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "ln", "-s", str(precious), str(shared / "w.writes.log")],
        check=True,
    )  # fmt: skip
    t = tester("--rounds", "3")
    gdb = run_attached(t, "--log", str(shared / "w"), "--quiet")
    assert gdb.returncode == 1
    assert "Traceback" not in gdb.stderr
    errors = [line for line in gdb.stderr.splitlines() if "refusing" in line]
    assert errors == [
        f"refusing to write through the symlink {shared}/w.writes.log; "
        "remove it or choose another --log prefix"
    ]
    assert precious.read_text() == SECRET
    assert t.proc.poll() is None, "the target lives on"
    status = Path(f"/proc/{t.pid}/status").read_text()
    assert "\nTracerPid:\t0\n" in status, "and is detached"
    assert not (shared / "w.jsonl").exists() or (shared / "w.jsonl").read_text() == ""


def test_a_full_disk_leaves_the_three_logs_in_agreement(tester, tiny_disk):
    t = tester("--rounds", "3000")
    prefix = tiny_disk / "w"
    gdb = run_attached(t, "--log", str(prefix), "--quiet")
    assert "tester: 3000 writes, 3000 reads" in t.finish()
    assert gdb.returncode == 1 and "Traceback" not in gdb.stderr
    seqs = [record["seq"] for record in read_jsonl(f"{prefix}.jsonl")]  # whole lines only
    assert seqs == list(range(1, len(seqs) + 1)) and seqs
    errors = [line for line in gdb.stderr.splitlines() if "No space left on device" in line]
    assert len(errors) == 1, gdb.stderr
    assert f"logging stopped and every log ends with record {len(seqs)};" in errors[0]
    text = Path(f"{prefix}.reads.log").read_text() + Path(f"{prefix}.writes.log").read_text()
    assert sorted(block_seqs(text)) == seqs
