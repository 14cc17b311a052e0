"""The README's first command: scripts/demo.sh watches the demo tester with the default engine."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO
from tests.records import read_jsonl

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_demo_logs_every_access_of_the_tester_with_the_default_engine():
    """Before, the tester waited for a tracer that the perf engine (auto's choice as root)
    never is, and gave up after 30 s with nothing logged (exit 3)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "demo.sh")], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out, err = ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
    assert done.returncode == 0, err[-2000:]
    assert "; engine perf (perf events permitted: root);" in err
    assert "summary: 6 accesses: 3 reads, 3 writes in " in out
    assert out.endswith("tester: 3 writes, 3 reads, value " + out.rsplit("value ", 1)[1])
    records = read_jsonl(REPO / "build" / "demo.jsonl")
    assert [r["kind"] for r in records] == ["write", "read"] * 3
    assert [[f["func"] for f in r["frames"]] for r in records] == [
        ["write_byte", "do_round", "main"],
        ["read_byte", "do_round", "main"],
    ] * 3
    assert (REPO / "build" / "demo.html").stat().st_size > 0
