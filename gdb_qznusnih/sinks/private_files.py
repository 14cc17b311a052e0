"""Opening the files the tool writes: never through a symlink, never another user's, 0600.

Pure: no gdb.  The tool runs as root and its logs hold a process's memory, so every file it
writes is created 0600 (as `perf record` creates perf.data) and an existing one is reused only
when it is a plain file of ours with no other name.  The checks are made on the opened
descriptor (fstat), never on the name before opening, so nothing can be swapped in between.
"""

from __future__ import annotations

import errno
import os
import pwd
import secrets
import stat

_MODE = 0o600
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a planted FIFO fails (ENXIO) instead of hanging; regular files ignore it.
_OPEN_FLAGS |= os.O_NONBLOCK


class UnsafeFileError(OSError):
    """Writing there would follow a link or reuse another user's file; str() is one line.

    `remedy` is what the user can do about it, short of choosing another path.
    """

    def __init__(self, message: str, remedy: str = "remove it") -> None:
        super().__init__(errno.EPERM, message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message


def one_line_error(path: str, error: OSError, choose_another: str) -> str:
    """The one-line message for `error` on `path`, ending with what to do.

    `choose_another` names the option to change, e.g. "--log prefix".
    """
    if isinstance(error, UnsafeFileError):
        return f"{error.message}; {error.remedy} or choose another {choose_another}"
    return f"cannot write {path}: {error.strerror or error}; choose a writable {choose_another}"


def _owner(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def file_refusal(path: str, info: os.stat_result) -> str | None:
    """Why the existing `path` (its lstat or fstat) must not be written to; None if it may."""
    if stat.S_ISLNK(info.st_mode):
        return f"refusing to write through the symlink {path}"
    if not stat.S_ISREG(info.st_mode):
        return f"refusing to write {path}: it is not a regular file"
    if info.st_uid != os.geteuid():
        return f"refusing to reuse {path}: it belongs to {_owner(info.st_uid)}"
    if info.st_nlink != 1:
        # A planted hard link would make us overwrite the file it names elsewhere.
        return f"refusing to write {path}: it has {info.st_nlink} hard links"
    return None


def directory_refusal(directory: str, info: os.stat_result) -> str | None:
    """Why files must not be written in `directory`; None if they may.

    Where others may write without the sticky bit, they can rename our files away and put
    their own in place between two runs, or between a report's write and its rename.
    """
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        return (
            f"refusing to write in {directory}: other users may write there and it has no "
            "sticky bit"
        )
    return None


_DIRECTORY_REMEDY = "write in a directory only you can write to"


def check_existing(path: str) -> None:
    """UnsafeFileError if `path` or its directory may not be written; for early checks."""
    directory = os.path.dirname(path) or "."
    refusal = directory_refusal(directory, os.stat(directory))
    if refusal is not None:
        raise UnsafeFileError(refusal, _DIRECTORY_REMEDY)
    try:
        refusal = file_refusal(path, os.lstat(path))
    except FileNotFoundError:
        return
    if refusal is not None:
        raise UnsafeFileError(refusal)


def _open_directory(directory: str) -> int:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    refusal = directory_refusal(directory, os.fstat(dir_fd))
    if refusal is not None:
        os.close(dir_fd)
        raise UnsafeFileError(refusal, _DIRECTORY_REMEDY)
    return dir_fd


def _open_name(dir_fd: int, path: str, flags: int) -> int:
    """os.open of `path`'s last component in `dir_fd`; a refusal says what is there."""
    name = os.path.basename(path)
    try:
        return os.open(name, flags, _MODE, dir_fd=dir_fd)
    except OSError as error:
        # ELOOP from O_NOFOLLOW, EEXIST from O_EXCL, EACCES from fs.protected_regular...
        try:
            refusal = file_refusal(path, os.lstat(name, dir_fd=dir_fd))
        except OSError:
            refusal = None
        if refusal is not None:
            raise UnsafeFileError(refusal) from None
        raise error from None


def _open_in(dir_fd: int, path: str, extra_flags: int = 0) -> int:
    """Open the last component of `path` in `dir_fd`, checked; the file is not emptied."""
    fd = _open_name(dir_fd, path, _OPEN_FLAGS | extra_flags)
    try:
        refusal = file_refusal(path, os.fstat(fd))
        if refusal is not None:
            raise UnsafeFileError(refusal)
        os.fchmod(fd, _MODE)  # it may have existed with a wider mode
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: str, append: bool = True) -> int:
    """A descriptor on `path`, emptied, mode 0600, opened safely; OSError if it cannot be.

    UnsafeFileError (an OSError) when `path` is a symlink, not a regular file, another
    user's, hard-linked, or in a directory others may write without the sticky bit.
    """
    dir_fd = _open_directory(os.path.dirname(path) or ".")
    try:
        fd = _open_in(dir_fd, path, os.O_APPEND if append else 0)
    finally:
        os.close(dir_fd)
    try:
        os.ftruncate(fd, 0)  # only now: an unchecked file is never emptied
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_private(path: str, chunks) -> None:
    """Write the strings of `chunks` to a new 0600 file, then rename it onto `path`.

    A signal (KeyboardInterrupt) or an error part way leaves `path` as it was and no
    temporary file behind; OSError (UnsafeFileError when unsafe) if it cannot be written.
    """
    directory = os.path.dirname(path) or "."
    dir_fd = _open_directory(directory)
    try:
        _check_target_name(dir_fd, path)
        temp = f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp"
        opened = False
        try:
            fd = _open_name(dir_fd, os.path.join(directory, temp), _OPEN_FLAGS | os.O_EXCL)
            opened = True  # O_EXCL: a new file of ours
            with open(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.writelines(chunks)
                out.flush()
                os.fsync(out.fileno())  # a full disk shows here, not after the rename
            os.rename(temp, os.path.basename(path), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as error:
            # Under gdb one stop signal can raise KeyboardInterrupt twice, after any call
            # (even os.open's, the file made): every call here sits inside the retry.
            for _ in (1, 2, 3):
                try:
                    if opened or not isinstance(error, OSError):
                        os.unlink(temp, dir_fd=dir_fd)
                    break
                except KeyboardInterrupt:
                    continue
                except OSError:
                    break
            raise
    finally:
        os.close(dir_fd)


def _check_target_name(dir_fd: int, path: str) -> None:
    """Refuse to rename onto a symlink or another user's file, as open_private would."""
    try:
        info = os.lstat(os.path.basename(path), dir_fd=dir_fd)
    except FileNotFoundError:
        return
    refusal = file_refusal(path, info)
    if refusal is not None:
        raise UnsafeFileError(refusal)
