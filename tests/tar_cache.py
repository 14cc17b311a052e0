"""One file out of a big tarball, extracted once and kept in the user's cache.

The third-party test needs 200 KB of C from the 138 MB linux-source tarball; unpacking it
takes most of that test's time.  The copy lives in ${XDG_CACHE_HOME:-~/.cache}/qznusnih/
extracted/, and, since the tests run as root, is used only when it and the directories
above it up to qznusnih/ are ours and only we can write them: a file planted by another
user would otherwise be compiled and run as root.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from pathlib import Path

from gdb_qznusnih.sinks.private_files import UnsafeFileError, file_refusal, replace_private


def cache_path(tarball: Path, member: str) -> Path:
    """Where `member` of `tarball` is kept; the name changes when the tarball does."""
    info = tarball.stat()
    key = f"{tarball.resolve()} {info.st_size} {info.st_mtime_ns} {member}".encode()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = f"{Path(member).name}-{hashlib.sha256(key).hexdigest()[:12]}"
    return root / "qznusnih" / "extracted" / name


def cached_tar_member(tarball: Path, member: str) -> bytes:
    """The bytes of `member`, from the cache or else extracted (and cached) once.

    UnsafeFileError when the cache is not ours alone (its `remedy` says what to do)."""
    path = cache_path(tarball, member)
    extracted = path.parent
    extracted.parent.parent.mkdir(parents=True, exist_ok=True)  # ~/.cache, the user's own
    _make_private_directories(extracted.parent, extracted)
    cached = _read_our_file(path)
    if cached is not None:
        return cached
    with tarfile.open(tarball) as tar:
        data = tar.extractfile(member).read()
    replace_private(str(path), [data.decode("utf-8", "surrogateescape")])  # the same bytes
    return data


def _make_private_directories(*directories: Path) -> None:
    for directory in directories:
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeFileError(f"refusing to use the cache {directory}: not a directory")
        if info.st_uid != os.geteuid():
            raise UnsafeFileError(f"refusing to use the cache {directory}: not ours")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeFileError(f"refusing to use the cache {directory}: others may write it")


def _read_our_file(path: Path) -> bytes | None:
    """The file's bytes if it is a plain file of ours that only we can write; None if absent.

    Checked on the opened descriptor, so nothing can be swapped in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeFileError(f"refusing to read the cache {path}: a symlink") from None
        raise
    with open(fd, "rb") as cached:
        info = os.fstat(cached.fileno())
        refusal = file_refusal(str(path), info)
        if refusal is None and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            refusal = f"refusing to read the cache {path}: others may write it"
        if refusal is not None:
            raise UnsafeFileError(refusal)
        return cached.read()
