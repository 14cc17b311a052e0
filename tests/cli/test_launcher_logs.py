"""The launcher's log files: planted links and files refused, 0600, a report replaced whole.

The attacker is `nobody`, planting in a sticky, world-writable directory like /tmp.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from launcher_helpers import (
    assert_one_line_error,
    gdb_child_of,
    run_launcher,
    start_launcher,
    wait_for,
)

from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

SECRET = "root's own file\n"
WAITING = ("--rounds", "3", "--timeout", "60")


def as_nobody(*argv: str) -> None:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], check=True
    )


@pytest.fixture
def shared_tmp():
    """(a sticky world-writable directory, a root-owned file outside it)."""
    top = Path(tempfile.mkdtemp(prefix="qzn-shared-"))
    top.chmod(0o755)
    shared = top / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    precious = top / "precious"
    precious.write_text(SECRET)
    yield shared, precious
    shutil.rmtree(top)


def assert_untouched(tester) -> None:
    assert tester.alive(), "the target died"
    assert tester.tracer_pid() == 0, "the target was attached"


def test_a_symlink_planted_by_nobody_is_refused_before_attaching(start_tester, shared_tmp):
    shared, precious = shared_tmp
    tester = start_tester(*WAITING)
    as_nobody("ln", "-s", str(precious), str(shared / "w.reads.log"))
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), "--log", str(shared / "w"))
    line = assert_one_line_error(done, code=1)
    assert line == (
        f"qznusnih: --log {shared}/w: refusing to write through the symlink "
        f"{shared}/w.reads.log; remove it or choose another prefix"
    )
    assert precious.read_text() == SECRET
    assert_untouched(tester)


def test_a_log_file_nobody_owns_is_not_reused(start_tester, shared_tmp):
    shared, _ = shared_tmp
    tester = start_tester(*WAITING)
    as_nobody("sh", "-c", f"echo planted > {shared}/w.jsonl")
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), "--log", str(shared / "w"))
    assert_one_line_error(
        done, f"refusing to reuse {shared}/w.jsonl: it belongs to user nobody (uid 65534)", code=1
    )
    assert (shared / "w.jsonl").read_text() == "planted\n"
    assert_untouched(tester)


def test_every_file_is_0600_even_with_umask_0(start_tester, tmp_path):
    tester = start_tester("--rounds", "2")
    prefix = tmp_path / "w"
    old = os.umask(0)  # the launcher and gdb inherit it
    try:
        done = run_launcher("watch", hex(tester.addr), str(tester.pid), "--log", str(prefix))
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    for suffix in (".jsonl", ".reads.log", ".writes.log", ".html"):
        mode = stat.S_IMODE(os.stat(f"{prefix}{suffix}").st_mode)
        assert mode == 0o600, f"{suffix}: {oct(mode)}"


def _report_being_written(directory: Path, html: Path, old: os.stat_result) -> bool:
    """A temporary file beside the report, or the report itself changed in place."""
    if any(name.startswith(".w.html.") for name in os.listdir(directory)):
        return True
    now = html.stat()
    return (now.st_ino, now.st_size) != (old.st_ino, old.st_size)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _stopped(pid: int) -> bool:
    return _status(pid)["State"].startswith("T")


def _sigint_pending(pid: int) -> bool:
    status = _status(pid)
    return any(int(status[mask], 16) & (1 << (signal.SIGINT - 1)) for mask in ("SigPnd", "ShdPnd"))


def test_a_stop_signal_while_the_report_is_written_keeps_the_old_one_and_the_run(
    start_tester, tmp_path
):
    """gdb is frozen mid-report, a SIGINT is made pending, gdb resumes and takes it there.

    The old report stays whole, no temporary is left, and the records, summary and exit
    status are those of the finished watch.
    """
    rounds = 2000
    tester = start_tester("--rounds", str(rounds))
    prefix = tmp_path / "w"
    html = Path(f"{prefix}.html")
    html.write_text("old report\n")
    html.chmod(0o600)
    old = html.stat()
    launcher = start_launcher(
        "watch", hex(tester.addr), str(tester.pid), "--log", str(prefix), "--quiet"
    )
    wait_for(lambda: tester.tracer_pid() != 0, what="gdb to attach")
    gdb = gdb_child_of(launcher.pid)
    try:
        deadline = time.monotonic() + 120
        while not _report_being_written(tmp_path, html, old):
            assert time.monotonic() < deadline and launcher.poll() is None, "no report began"
            time.sleep(0.001)
        os.kill(gdb, signal.SIGSTOP)
        # Only once it is stopped: a SIGINT pending with the SIGSTOP would be handled first.
        wait_for(lambda: _stopped(gdb), timeout=10, what="gdb to stop")
        # The watch has ended (the tester exited) and gdb writes the report after it: a stop
        # signal reaching gdb now, as the launcher relays one, lands in the middle of it.
        os.kill(gdb, signal.SIGINT)
        os.kill(gdb, signal.SIGCONT)
        out, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:  # gdb is still its child: the pid is gdb's
            with contextlib.suppress(ProcessLookupError):
                os.kill(gdb, signal.SIGCONT)  # never left frozen, holding the launcher's pipes
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode == 0, err
    assert "Traceback" not in err
    assert f"summary: {2 * rounds:,} accesses" in out
    assert f"no HTML report: interrupted, {html} left as it was" in err
    assert html.read_text() == "old report\n"
    assert sorted(os.listdir(tmp_path)) == ["w.html", "w.jsonl", "w.reads.log", "w.writes.log"], err
    docs = read_jsonl(f"{prefix}.jsonl")
    assert [d["seq"] for d in docs] == list(range(1, 2 * rounds + 1))
    tester.assert_completed(rounds)
