"""--if COND and --stop-if COND on tests/c/mix.c: only the matching accesses are logged; the
watch ends at the first match and the target finishes (or, inside gdb, stops at it)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env, run_gdb_stopped_at
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

LOG_IF = "kind == 'write' and value != 0 or func ~ '^load'"
STOP_IF = "func == 'increment' and kind == 'write'"


def watch_mix(mix, prefix, *options: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """gdb -batch on mix: stopped at ready(), then qzn-watch OPTIONS &area[11] to the end."""
    argv = " ".join(f'"{option}"' if " " in option else option for option in options)
    watch = f"qzn-watch --quiet --color never --no-html --log {prefix} {argv} &area[11]"
    cmd = gdb_base_command() + ["-ex", "tbreak ready", "-ex", "run", "-ex", watch, str(mix)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done, read_jsonl(f"{prefix}.jsonl")


def site(record: dict) -> tuple:
    return record["kind"], record["value"], record["frames"][0]["func"], record["tid"] > 0


@pytest.fixture(scope="module")
def mix(build_c):
    return build_c("mix")


@pytest.fixture(scope="module")
def every_access(mix, tmp_path_factory):
    done, records = watch_mix(mix, tmp_path_factory.mktemp("all") / "all")
    assert done.returncode == 0 and len(records) == 19, done.stderr
    return records


def test_if_logs_exactly_the_accesses_where_cond_holds(mix, every_access, tmp_path):
    done, records = watch_mix(mix, tmp_path / "if", "--if", LOG_IF)
    assert done.returncode == 0, done.stderr
    wanted = [
        r
        for r in every_access
        if (r["kind"] == "write" and r["value"] != 0) or r["frames"][0]["func"].startswith("load")
    ]
    assert [site(r) for r in records] == [site(r) for r in wanted]
    assert [r["seq"] for r in records] == list(range(1, len(wanted) + 1))
    assert f"summary: {len(wanted)} accesses" in done.stdout
    assert "watch 1 ended: target exited with code 0" in done.stderr


def test_stop_if_ends_the_watch_at_the_first_match_and_the_target_finishes(
    mix, every_access, tmp_path
):
    done, records = watch_mix(mix, tmp_path / "stop", "--stop-if", STOP_IF)
    assert done.returncode == 0, done.stderr
    first = next(
        i
        for i, r in enumerate(every_access)
        if r["frames"][0]["func"] == "increment" and r["kind"] == "write"
    )
    assert [site(r) for r in records] == [site(r) for r in every_access[: first + 1]]
    assert f"watch 1 ended: --stop-if {STOP_IF} matched" in done.stderr
    assert "mix done" in done.stdout  # the target ran on to its end, unwatched


def test_inside_gdb_stop_if_stops_the_program_at_that_instruction(mix, tmp_path):
    done = run_gdb_stopped_at(
        mix, f'qzn-watch --color never --stop-if "{STOP_IF}" &area[11]', "continue",
        "python print('stopped in', gdb.selected_frame().name())", "info watchpoints", "kill",
        timeout=60,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "stopped in increment" in done.stdout, done.stdout
    headers = [line for line in done.stdout.splitlines() if line.startswith("[1:")]
    assert headers[-1].split()[1] == "WRITE"  # the matching access was printed last
    assert "No watchpoints." in done.stdout  # the watch is over, its watchpoint removed


def test_a_bad_cond_is_one_line_and_nothing_is_armed(mix):
    cmd = gdb_base_command() + [
        "-ex", "tbreak ready", "-ex", "run",
        "-ex", "qzn-watch --if \"value == 'x'\" &area[11]", "-ex", "info watchpoints", str(mix),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=60)
    assert "--if: column 7: '==' compares a number with a string" in done.stderr
    assert "No watchpoints." in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_set_qzn_if_gives_the_default_and_a_bad_one_is_refused_at_once(mix, tmp_path):
    prefix = tmp_path / "set"
    cmd = gdb_base_command() + [
        "-ex", "set qzn if value == 'x'", "-ex", "show qzn if",
        "-ex", "set qzn if kind == 'read'", "-ex", "tbreak ready", "-ex", "run",
        "-ex", f"qzn-watch --quiet --no-html --log {prefix} &area[11]", str(mix),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert "column 7: '==' compares a number with a string" in done.stderr
    assert 'The default condition for logging an access is "".' in done.stdout
    assert {r["kind"] for r in read_jsonl(f"{prefix}.jsonl")} == {"read"}
    assert len(read_jsonl(f"{prefix}.jsonl")) == 10  # mix's reads
