"""A program we did not write, checked against an independent oracle.

BSD unifdef (scripts/unifdef.c in Debian's linux-source-6.1), built -O2, runs under
`qznusnih run` watching its global `linenum`; valgrind's lackey tool traces every load
and store of the same run.  The counts by kind must agree exactly.
"""

from __future__ import annotations

import collections
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from gdb_qznusnih.sinks.private_files import UnsafeFileError
from tests.conftest import quiet_env
from tests.records import read_jsonl
from tests.tar_cache import cache_path, cached_tar_member

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
    try:
        source = cached_tar_member(LINUX_SOURCE, MEMBER)
    except UnsafeFileError as error:
        pytest.fail(f"{error}; {error.remedy}")
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
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    ours = collections.Counter(r["kind"] for r in records)
    oracle = lackey_counts(unifdef, args, address, 4, unifdef.parent / "lackey.txt")
    print(f"unifdef linenum: qznusnih {dict(ours)}, valgrind lackey {dict(oracle)}")
    # The exact count is the oracle's (it follows the system's stdio.h); this only keeps the
    # comparison from being an empty one.
    assert oracle["read"] > 100 and oracle["write"] > 100
    assert ours == oracle
    assert all(r["kind_from"] == "insn" for r in records)


@pytest.fixture
def small_tarball(tmp_path, monkeypatch) -> Path:
    """A real .tar.xz holding dir/member.c, and a cache of our own under tmp_path."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "member.c").write_bytes(b"int x; /* \xff not UTF-8 */\n")
    tarball = tmp_path / "small.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        tar.add(tmp_path / "dir", arcname="dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tarball


def test_a_member_is_extracted_once_then_read_from_the_cache(small_tarball, monkeypatch):
    assert cached_tar_member(small_tarball, "dir/member.c") == b"int x; /* \xff not UTF-8 */\n"
    cached = cache_path(small_tarball, "dir/member.c")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o700

    def no_second_extraction(*args, **kwargs):
        raise AssertionError("decompressed again")

    monkeypatch.setattr(tarfile, "open", no_second_extraction)
    assert cached_tar_member(small_tarball, "dir/member.c") == b"int x; /* \xff not UTF-8 */\n"


def test_a_cache_planted_by_another_user_is_refused(small_tarball, monkeypatch):
    """nobody, sharing the cache's parent, plants the file root would compile and run."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    shared = Path(tempfile.mkdtemp(prefix="qzn-cache-"))
    try:
        shared.chmod(0o1777)  # like /tmp
        monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
        planted = cache_path(small_tarball, "dir/member.c")
        script = f"mkdir -p {planted.parent} && echo 'planted' > {planted}"
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        subprocess.run([*as_nobody, "sh", "-c", script], check=True)
        with pytest.raises(UnsafeFileError) as refused:
            cached_tar_member(small_tarball, "dir/member.c")
        assert str(refused.value) == f"refusing to use the cache {shared / 'qznusnih'}: not ours"
        assert planted.read_bytes() == b"planted\n"  # left alone, not replaced either
    finally:
        shutil.rmtree(shared)
