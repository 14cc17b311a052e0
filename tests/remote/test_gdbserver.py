"""qzn-watch and the launcher through a real gdbserver on loopback, in its three modes
(`gdbserver :PORT PROG`, `gdbserver --attach :PORT PID`, `gdbserver --multi` + attach),
checked record by record against the same program watched natively."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from gdb_qznusnih.counted import counted
from tests.cli.launcher_helpers import (
    assert_one_line_error,
    run_launcher,
    start_launcher,
    wait_for,
)
from tests.conftest import gdb_base_command, quiet_env
from tests.gdb.test_mix import EXPECTED, watch_mix
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

ARMED = "qzn: watch 1: "


def comparable(records: list[dict]) -> list[tuple]:
    """What must be the same natively and over gdbserver: addresses aside (ASLR)."""
    return [
        (
            r["kind"],
            r["kind_from"],
            r["old"],
            r["value"],
            r["insn"],
            tuple((f["func"], f["line"]) for f in r["frames"]),
        )
        for r in records
    ]


def thread_split(records: list[dict]) -> list[int]:
    """Each record's thread as 0 (the first seen) or 1 (the second)."""
    order = list(dict.fromkeys(r["tid"] for r in records))
    return [order.index(r["tid"]) for r in records]


@pytest.fixture(scope="module")
def native_mix(build_c, tmp_path_factory):
    result, records, _ = watch_mix(build_c("mix"), tmp_path_factory.mktemp("native"))
    assert [(r["kind"], r["frames"][0]["func"]) for r in records] == EXPECTED, result.stderr
    return records


def gdb_on(address: str, *commands: str, prefix, watch_options=()):
    """gdb -batch: `target remote ADDRESS`, COMMANDS, then qzn-watch on &area[11]."""
    watch = ["qzn-watch", "--log", str(prefix), "--color", "never", *watch_options, "&area[11]"]
    cmd = gdb_base_command() + ["-ex", "set sysroot /"]
    for command in [*commands, " ".join(watch)]:
        cmd += ["-ex", command]
    return cmd


def run_watch_releasing(cmd: list[str], mix: subprocess.Popen) -> subprocess.CompletedProcess:
    """Run gdb; once the watch is armed, let `mix wait` go on (a byte on its stdin)."""
    gdb = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env()
    )
    seen = []
    for line in gdb.stderr:
        seen.append(line)
        if line.startswith(ARMED):
            break
    mix.stdin.write("g")
    mix.stdin.flush()
    out, err = gdb.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, gdb.returncode, out, "".join(seen) + err)


@contextmanager
def mix_that_runs_to_its_end(program):
    """`mix wait`, waiting for its go byte: (process, pid).  On the way out it must end, exit
    0 and say "mix done" (unless the test failed first)."""
    mix = subprocess.Popen(
        [str(program), "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        mix.stdout.readline()  # byte 0x...
        yield mix, int(mix.stdout.readline().split()[1])  # pid P
    finally:
        out, _ = mix.communicate(timeout=60)
    assert (mix.returncode, out.strip()) == (0, "mix done")


def watch_started_program(server, program, prefix, watch_options=()):
    """gdb with `program`'s symbols on the one gdbserver started, run to ready(), watching."""
    cmd = gdb_on(
        server.address, f"target remote {server.address}", "tbreak ready", "continue",
        prefix=prefix, watch_options=watch_options,
    )  # fmt: skip
    cmd.insert(1, str(program))  # gdb FILE: the program's symbols
    return subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)


def remote_watch_of_the_data(server, prefix, *options: str) -> list[str]:
    """The launcher's `watch &the_data --remote SERVER --log PREFIX --quiet --no-html OPTIONS`."""
    return [
        "watch", "&the_data", *options, "--remote", server.address, "--log", str(prefix),
        "--quiet", "--no-html",
    ]  # fmt: skip


def watching_an_attached_tester(start_tester, gdbserver, prefix, rounds: int, records: int):
    """A tester of `rounds` 20 ms rounds, attached by gdbserver, watched by a launcher until
    `records` records are logged: (tester, server, launcher)."""
    tester = start_tester("--rounds", str(rounds), "--interval-ms", "20", "--grace-ms", "1000")
    server = gdbserver("--attach", then=[tester.pid])
    launcher = start_launcher(*remote_watch_of_the_data(server, prefix))
    jsonl = prefix.with_suffix(".jsonl")
    wait_for(
        lambda: jsonl.exists() and jsonl.read_text().count("\n") >= records,
        what=f"{records} records",
    )
    return tester, server, launcher


def assert_same_as_native(records, native, result):
    assert "Traceback" not in result.stderr, result.stderr
    assert comparable(records) == comparable(native), result.stdout + result.stderr
    assert thread_split(records) == [0] * 17 + [1, 1]
    assert len({r["pid"] for r in records}) == 1
    assert sum(r["kind"] == "read" for r in records) == 10
    assert sum(r["kind"] == "write" for r in records) == 9


# --- the three modes -------------------------------------------------------------------


def test_a_program_gdbserver_started_is_watched_as_natively(
    build_c, gdbserver, tmp_path, native_mix
):
    server = gdbserver(then=[build_c("mix")])
    prefix = tmp_path / "started"
    result = watch_started_program(server, build_c("mix"), prefix)
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert_same_as_native(records, native_mix, result)
    # gdbserver disables ASLR like gdb's `run`: the very same pcs.
    assert [r["pc"] for r in records] == [r["pc"] for r in native_mix]
    assert "qzn: watch 1 ended: target exited with code 0" in result.stderr
    assert "mix done" in server.rest_of_output()


def test_a_process_gdbserver_attached_is_watched_as_natively(
    build_c, gdbserver, tmp_path, native_mix
):
    with mix_that_runs_to_its_end(build_c("mix")) as (mix, pid):
        server = gdbserver("--attach", then=[pid])
        prefix = tmp_path / "attached"
        result = run_watch_releasing(
            gdb_on(server.address, f"target remote {server.address}", prefix=prefix), mix
        )
        records = read_jsonl(prefix.with_suffix(".jsonl"))
        assert_same_as_native(records, native_mix, result)
        assert {r["pid"] for r in records} == {pid}
        assert "qzn: watch 1 ended: target exited with code 0" in result.stderr


def test_count_ends_the_watch_and_the_detached_program_runs_on(build_c, gdbserver, tmp_path):
    with mix_that_runs_to_its_end(build_c("mix")) as (mix, pid):
        server = gdbserver("--attach", then=[pid])
        prefix = tmp_path / "count"
        cmd = gdb_on(
            server.address, f"target remote {server.address}", prefix=prefix,
            watch_options=["--count", "5"],
        )  # fmt: skip
        result = run_watch_releasing(cmd, mix)
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [(r["kind"], r["frames"][0]["func"]) for r in records] == EXPECTED[:5]
    assert "qzn: watch 1 ended: --count 5 reached" in result.stderr


def test_a_process_attached_through_gdbserver_multi_is_watched_as_natively(
    build_c, gdbserver, tmp_path, native_mix
):
    with mix_that_runs_to_its_end(build_c("mix")) as (mix, pid):
        server = gdbserver("--multi")
        prefix = tmp_path / "multi"
        cmd = gdb_on(
            server.address, f"target extended-remote {server.address}", f"attach {pid}",
            prefix=prefix,
        )  # fmt: skip
        result = run_watch_releasing(cmd, mix)
        records = read_jsonl(prefix.with_suffix(".jsonl"))
        assert_same_as_native(records, native_mix, result)
    assert server.proc.poll() is None, "gdbserver --multi serves on after the detach"


def test_gdbserver_is_not_taken_for_a_whole_system_stub_unless_asked(build_c, gdbserver, tmp_path):
    server = gdbserver(then=[build_c("mix")])
    result = watch_started_program(
        server, build_c("mix"), tmp_path / "system", watch_options=["--system"]
    )
    # --system: the QEMU mode's filter, which gdbserver's registers cannot feed (no cr3).
    assert "filtering by address space" in result.stderr, result.stderr
    armed = [line for line in result.stderr.splitlines() if line.startswith(ARMED)]
    assert len(armed) == 1


# --- the launcher ----------------------------------------------------------------------


def test_launcher_remote_on_a_started_program_with_file_and_gdb(
    build_c, gdbserver, tmp_path, native_mix
):
    program = build_c("mix")
    server = gdbserver(then=[program])
    prefix = tmp_path / "launched"
    done = run_launcher(
        "watch", "&area[11]", "--remote", server.address, "--file", str(program),
        "--sysroot", "/", "--gdb", shutil.which("gdb"), "--log", str(prefix), "--quiet",
        "--no-html",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert comparable(records) == comparable(native_mix)
    assert f"engine gdb (through gdbserver at {server.address})" in done.stderr


def test_launcher_remote_attaches_a_pid_through_gdbserver_multi(start_tester, gdbserver, tmp_path):
    server = gdbserver("--multi")
    tester = start_tester("--rounds", "5", "--grace-ms", "1000")
    prefix = tmp_path / "tester"
    done = run_launcher(
        *remote_watch_of_the_data(server, prefix, str(tester.pid)),
        env=quiet_env(QZN_GDB=shutil.which("gdb")),
    )
    assert done.returncode == 0, done.stderr
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [r["kind"] for r in records] == ["write", "read"] * 5
    assert [r["frames"][0]["func"] for r in records] == ["write_byte", "read_byte"] * 5
    assert {tuple(f["func"] for f in r["frames"][1:]) for r in records} == {("do_round", "main")}
    assert {r["pid"] for r in records} == {tester.pid}
    writes = [r["value"] for r in records if r["kind"] == "write"]
    reads = [r["value"] for r in records if r["kind"] == "read"]
    assert writes == reads, "each round reads back the value it wrote"
    tester.assert_completed(5)


def test_launcher_duration_ends_the_watch_and_the_program_completes(
    start_tester, gdbserver, tmp_path
):
    tester = start_tester("--rounds", "30", "--interval-ms", "50", "--grace-ms", "1000")
    server = gdbserver("--attach", then=[tester.pid])
    prefix = tmp_path / "duration"
    done = run_launcher(*remote_watch_of_the_data(server, prefix, "--duration", "0.5"))
    assert done.returncode == 0, done.stderr
    assert "qzn: watch 1 ended: --duration 0.5s reached" in done.stderr
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    summary = [line for line in done.stdout.splitlines() if line.startswith("summary:")]
    counts = summary[0].split(": ", 2)[2]
    assert summary == [f"summary: {counted(len(records), 'access')}: {counts}"]
    tester.assert_completed(30)  # detached, it ran its rounds to the end


def test_sigterm_ends_the_watch_though_gdbserver_cannot_interrupt_the_process(
    start_tester, gdbserver, tmp_path
):
    """gdbserver 13 interrupts by signalling the process's group, which fails for a process
    that leads none (like this tester, in pytest's group): the next hit ends the watch."""
    prefix = tmp_path / "term"
    tester, server, launcher = watching_an_attached_tester(
        start_tester, gdbserver, prefix, rounds=100, records=4
    )
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert "qzn: watch 1 ended: SIGTERM received" in err
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert f"summary: {counted(len(records), 'access')}" in out
    assert len(records) < 200, "ended before the program did"
    tester.assert_completed(100)  # detached and running on
    assert "Sending SIGINT to process group" in server.rest_of_output()


# --- bad input -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_one_line():
    done = run_launcher("watch", "0x1000", "--remote", f"127.0.0.1:{free_port()}")
    assert_one_line_error(done, "cannot connect to gdbserver", "Connection refused", code=1)


def test_an_unknown_host_is_one_line():
    done = run_launcher("watch", "0x1000", "--remote", "no-such-board.invalid:2345")
    assert_one_line_error(done, "cannot connect to gdbserver at no-such-board.invalid", code=1)


def test_a_server_that_is_not_gdbserver_is_one_line():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_garbage():
        conn, _ = listener.accept()
        with conn:
            try:
                while conn.recv(4096):
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\n")
            except OSError:
                pass

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        started = time.monotonic()
        done = run_launcher("watch", "0x1000", "--remote", f"127.0.0.1:{port}")
        took = time.monotonic() - started
    finally:
        listener.close()
    assert_one_line_error(done, "does not answer as gdbserver", code=1)
    assert took < 25, took


def test_the_connection_dropping_mid_watch_keeps_the_records(start_tester, gdbserver, tmp_path):
    prefix = tmp_path / "drop"
    _, server, launcher = watching_an_attached_tester(
        start_tester, gdbserver, prefix, rounds=1000, records=6
    )
    server.proc.send_signal(signal.SIGKILL)
    out, err = launcher.communicate(timeout=60)
    records = read_jsonl(prefix.with_suffix(".jsonl"))  # every line whole
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert f"summary: {counted(len(records), 'access')}" in out
    errors = [line for line in err.splitlines() if line.startswith("qznusnih:")]
    assert errors == [
        f"qznusnih: lost the connection to {server.address} mid-watch; the records so far "
        "are logged, the program's state on the board is unknown"
    ]
    assert "Traceback" not in err
    assert launcher.returncode == 1


def test_a_pid_gdbserver_cannot_attach_is_one_line(gdbserver):
    server = gdbserver("--multi")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now
    done = run_launcher("watch", "0x1000", str(gone.pid), "--remote", server.address)
    assert_one_line_error(
        done, f"gdbserver at {server.address} cannot attach to process {gone.pid}", code=1
    )
    assert server.proc.poll() is None


def test_a_newline_in_remote_cannot_run_a_gdb_command(start_tester, gdbserver, tmp_path):
    """Pasted unchecked, `target extended-remote HOST:PORT\nshell touch F` connects to the
    real gdbserver and then runs the shell command."""
    server = gdbserver("--multi")
    tester = start_tester("--rounds", "1")
    planted = tmp_path / "pwned"
    attack = f"{server.address}\nshell touch {planted}"
    done = run_launcher("watch", "0x1000", str(tester.pid), "--remote", attack)
    assert_one_line_error(done, "--remote contains control characters", code=2)
    assert not planted.exists()
    assert tester.tracer_pid() == 0, "not attached"


@pytest.mark.parametrize("flag", ["--file", "--sysroot", "--gdb"])
def test_control_characters_in_paths_are_refused(tmp_path, flag):
    done = run_launcher(
        "watch", "0x1000", "--remote", "127.0.0.1:2345", flag, f"/bin\nshell touch {tmp_path}/x"
    )
    assert_one_line_error(done, f"{flag} contains control characters", code=2)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "value", ["board", "board:", "board:0", "board:65536", "bo ard:1", "[::1:2345", "b_d:1"]
)
def test_a_bad_host_port_is_one_line(value):
    done = run_launcher("watch", "0x1000", "--remote", value)
    assert_one_line_error(done, f"--remote '{value}'", code=2)


def test_a_loopback_listener_of_another_user_is_not_connected_to():
    """A local user takes the port gdbserver was to have: gdb (root) must not talk to it."""
    port = free_port()
    spy = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3",
         "-c", "import socket,sys; s=socket.create_server(('127.0.0.1', int(sys.argv[1])));"
         "print('up', flush=True); c, _ = s.accept(); print('connected', flush=True)",
         str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert spy.stdout.readline() == "up\n"
        done = run_launcher("watch", "0x1000", "--remote", f"127.0.0.1:{port}")
        assert_one_line_error(done, f"port {port} on this machine is held by uid", code=1)
        time.sleep(0.2)
        assert spy.poll() is None, "the spy's stub was connected to"
    finally:
        spy.kill()
        out, _ = spy.communicate()
    assert "connected" not in out


def test_perf_engine_with_remote_is_one_line():
    done = run_launcher("watch", "0x1000", "--remote", "127.0.0.1:2345", "--engine", "perf")
    assert_one_line_error(done, "--engine perf watches a process of this machine only", code=2)


def test_a_gdb_that_is_not_there_is_one_line():
    done = run_launcher("watch", "0x1000", "--remote", "127.0.0.1:2345", "--gdb", "/no/gdb")
    assert_one_line_error(done, "gdb '/no/gdb' (from --gdb or QZN_GDB) is not an executable")


def test_a_gdb_without_python_is_one_line():
    done = run_launcher(
        "watch", "0x1000", "--remote", "127.0.0.1:2345", env=quiet_env(QZN_GDB="/bin/false")
    )
    assert_one_line_error(done, "/bin/false cannot run Python", code=1)
