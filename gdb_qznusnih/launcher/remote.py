"""`qznusnih watch ... --remote HOST:PORT`: the values checked, and gdb's command line.

HOST:PORT, --file and --sysroot are pasted into gdb commands, so each is checked here first:
no control characters (a newline would start a second gdb command), a host of name or
address characters only, a port from 1 to 65535.  A stub on this machine's loopback must
listen as root or as us: another user's listener would be a stub we never started, and
gdb obeys a stub's File-I/O requests (open and write our files).  Standard library only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket

from gdb_qznusnih.launcher.preflight import PreflightError
from gdb_qznusnih.options import OptionError

MIN_PYTHON = (3, 10)  # setup.py's python_requires
CONNECT_TIMEOUT_S = 10  # gdb's `set tcp connect-timeout` while it connects
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_TCP_LISTEN = "0A"


def has_control_characters(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def parse_host_port(text: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` or `[IPV6]:PORT`; OptionError with one line otherwise."""
    if has_control_characters(text):
        raise OptionError("--remote contains control characters; give HOST:PORT, e.g. board:2345")
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        valid_host = _is_ip(host, version=6)
    else:
        valid_host = _is_ip(host, version=4) or bool(_HOST_NAME.fullmatch(host))
    if not sep or not valid_host:
        raise OptionError(
            f"--remote '{text}' is not HOST:PORT; give a host name or address and a port, "
            "e.g. board:2345 or [fe80::1]:2345"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"--remote '{text}': the port must be a number from 1 to 65535")
    return host, int(port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def gdb_address(host: str, port: int) -> str:
    """How `target remote` takes it: gdb reads `[::1]:2345` for IPv6."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_file(flag: str, path: str | None, directory: bool) -> str | None:
    """An absolute path to an existing file (or directory), safe to paste into gdb."""
    if path is None:
        return None
    if has_control_characters(path) or path != path.strip():
        raise OptionError(f"{flag} contains control characters or surrounding spaces")
    if directory and not os.path.isdir(path):
        raise OptionError(f"{flag} {path}: not a directory; give the board's root file system")
    if not directory and not os.path.isfile(path):
        raise OptionError(f"{flag} {path}: not a file; give the program the board runs")
    return os.path.abspath(path)


def check_loopback_listener(host: str, port: int) -> None:
    """Refuse a stub on this machine's loopback that another user listens on."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        return  # gdb says why it cannot connect
    if not any(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        return
    owners = listener_uids(port)
    strangers = sorted(uid for uid in owners if uid not in (0, os.getuid()))
    if strangers:
        raise PreflightError(
            f"port {port} on this machine is held by uid {strangers[0]}, not by root or you; "
            "it is not a gdbserver you started: stop that process, or use another port"
        )


def listener_uids(port: int) -> set[int]:
    """The uids of the TCP sockets listening on `port` here (/proc/net/tcp and tcp6)."""
    uids: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as file:
                uids |= parse_listeners(file.read(), port)
        except OSError:
            continue
    return uids


def parse_listeners(table: str, port: int) -> set[int]:
    """The uids listening on `port` in one /proc/net/tcp* table."""
    uids = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[3] != _TCP_LISTEN:
            continue
        local_port = fields[1].rpartition(":")[2]
        if int(local_port, 16) == port:
            uids.add(int(fields[7]))
    return uids


def connect_commands(
    address: str, pid: int | None, quoted_program: str | None, sysroot: str | None
) -> list[str]:
    """gdb's -ex commands that reach the process: attach `pid` through `gdbserver --multi`,
    or take the one gdbserver has.  arm/attach.py says why it failed in one line.

    `quoted_program` is --file quoted for gdb (options.gdb_quote)."""
    commands = ["set tcp auto-retry off", f"set tcp connect-timeout {CONNECT_TIMEOUT_S}"]
    if sysroot is not None:
        commands.append(f"set sysroot {sysroot}")
    if quoted_program is not None:
        commands.append(f"file {quoted_program}")
    kind = "extended-remote" if pid is not None else "remote"
    call = f"attach.connect({kind!r}, {address!r})"
    if pid is not None:
        call += f"; attach.attach({int(pid)})"
    commands.append(f"python from gdb_qznusnih.arm import attach; {call}")
    return commands


def python_version_problem(gdb: str, version: tuple[int, int] | None) -> str | None:
    """Why the extension cannot load in a gdb embedding Python `version`; None if it can."""
    if version is None or tuple(version) >= MIN_PYTHON:
        return None
    need = ".".join(map(str, MIN_PYTHON))
    return (
        f"{gdb} embeds Python {version[0]}.{version[1]}; gdb-qznusnih needs Python {need} or "
        "later: use a gdb built with a newer Python (--gdb PATH or QZN_GDB)"
    )
