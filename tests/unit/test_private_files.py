"""Files the tool writes: never through a link, never another user's, 0600, replaced whole.

The attacks are real: files planted by `nobody` in a sticky, world-writable directory like
/tmp, against root-owned files.  They need root (to plant as another user).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from gdb_qznusnih.sinks import private_files
from gdb_qznusnih.sinks.private_files import UnsafeFileError, open_private, replace_private

SECRET = "root's own file\n"


def as_nobody(*argv: str) -> None:
    """Run `argv` as nobody:nogroup (the attacker)."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], check=True
    )


@pytest.fixture
def shared_tmp():
    """A /tmp-like directory: everyone may write, the sticky bit set; and a root file."""
    top = Path(tempfile.mkdtemp(prefix="qzn-shared-"))  # pytest's tmp_path is root-only
    top.chmod(0o755)
    shared = top / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    precious = top / "precious"
    precious.write_text(SECRET)
    yield shared, precious
    shutil.rmtree(top)


def test_a_symlink_planted_by_another_user_is_refused(shared_tmp):
    shared, precious = shared_tmp
    as_nobody("ln", "-s", str(precious), str(shared / "w.jsonl"))
    with pytest.raises(UnsafeFileError) as caught:
        open_private(str(shared / "w.jsonl"))
    assert str(caught.value) == f"refusing to write through the symlink {shared}/w.jsonl"
    assert precious.read_text() == SECRET


def test_a_file_of_another_user_is_not_reused(shared_tmp):
    shared, _ = shared_tmp
    planted = shared / "w.jsonl"
    as_nobody("sh", "-c", f"echo planted > {planted}")
    with pytest.raises(UnsafeFileError) as caught:
        open_private(str(planted))
    owner = "user nobody (uid 65534)"
    assert str(caught.value) == f"refusing to reuse {planted}: it belongs to {owner}"
    assert planted.read_text() == "planted\n"
    assert planted.stat().st_uid == 65534


def test_a_hard_link_is_refused(shared_tmp):
    # fs.protected_hardlinks stops nobody linking root's file; where it is off, this is the
    # attack, so a second name is refused whoever made it.
    shared, precious = shared_tmp
    os.link(precious, shared / "w.jsonl")
    with pytest.raises(UnsafeFileError, match="w.jsonl: it has 2 hard links$"):
        open_private(str(shared / "w.jsonl"))
    assert precious.read_text() == SECRET


def test_a_planted_fifo_is_refused_without_hanging(shared_tmp):
    shared, _ = shared_tmp
    as_nobody("mkfifo", str(shared / "w.jsonl"))
    with pytest.raises(UnsafeFileError) as caught:  # O_NONBLOCK: ENXIO, not a wait
        open_private(str(shared / "w.jsonl"))
    assert str(caught.value) == f"refusing to write {shared}/w.jsonl: it is not a regular file"


def test_a_directory_others_may_write_without_the_sticky_bit_is_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UnsafeFileError) as caught:
        open_private(str(open_dir / "w.jsonl"))
    assert str(caught.value) == (
        f"refusing to write in {open_dir}: other users may write there and it has no sticky bit"
    )
    assert caught.value.remedy == "write in a directory only you can write to"
    assert os.listdir(open_dir) == []


def test_created_files_are_0600_even_with_umask_0(shared_tmp):
    shared, _ = shared_tmp
    old = os.umask(0)
    try:
        os.close(open_private(str(shared / "w.jsonl")))
        replace_private(str(shared / "w.html"), ["<html>"])
    finally:
        os.umask(old)
    for name in ("w.jsonl", "w.html"):
        assert stat.S_IMODE((shared / name).stat().st_mode) == 0o600


def test_an_existing_own_file_is_emptied_and_made_0600(tmp_path):
    mine = tmp_path / "w.jsonl"
    mine.write_text("old\n")
    mine.chmod(0o644)
    fd = open_private(str(mine))
    os.write(fd, b"new\n")
    os.close(fd)
    assert mine.read_text() == "new\n"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600


def chunks_then(error: BaseException):
    yield "<html>"
    yield "half a report"
    raise error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(errno.EIO, "I/O error")])
def test_a_failed_replace_keeps_the_old_file_and_no_temporary(tmp_path, error):
    report = tmp_path / "w.html"
    report.write_text("old report")
    with pytest.raises(type(error)):
        replace_private(str(report), chunks_then(error))
    assert report.read_text() == "old report"
    assert os.listdir(tmp_path) == ["w.html"]


def test_replace_does_not_rename_onto_a_symlink_or_another_users_file(shared_tmp):
    shared, precious = shared_tmp
    as_nobody("ln", "-s", str(precious), str(shared / "w.html"))
    with pytest.raises(UnsafeFileError, match="^refusing to write through the symlink"):
        replace_private(str(shared / "w.html"), ["<html>"])
    assert os.readlink(shared / "w.html") == str(precious)
    assert sorted(os.listdir(shared)) == ["w.html"]


def test_a_temporary_name_planted_in_advance_is_refused_not_followed(tmp_path, monkeypatch):
    """The name is random (16 hex digits); were it guessed, O_EXCL|O_NOFOLLOW still hold."""
    names = []
    real_token = private_files.secrets.token_hex

    def recorded(n):
        names.append(real_token(n))
        (tmp_path / f".w.html.{names[-1]}.tmp").symlink_to(tmp_path / "victim")
        return names[-1]

    monkeypatch.setattr(private_files.secrets, "token_hex", recorded)
    with pytest.raises(UnsafeFileError, match="refusing to write through the symlink"):
        replace_private(str(tmp_path / "w.html"), ["<html>"])
    assert not (tmp_path / "victim").exists()
    assert len(names) == 1 and len(names[0]) == 16


def test_check_existing_gives_the_same_refusals_before_opening(shared_tmp):
    shared, precious = shared_tmp
    as_nobody("ln", "-s", str(precious), str(shared / "w.jsonl"))
    with pytest.raises(UnsafeFileError, match="^refusing to write through the symlink"):
        private_files.check_existing(str(shared / "w.jsonl"))
    private_files.check_existing(str(shared / "absent.jsonl"))
