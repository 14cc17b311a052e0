"""Fixtures for the report tests: logs recorded by a real gdb on real programs, chromium.

The `browser` marker is for tests that need headless chromium.  They skip when it is missing,
except under CI=true, where they fail: CI must install it (scripts/setup.sh --dev).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, gdb_base_command, quiet_env
from tests.records import read_jsonl

ARTIFACTS = Path(os.environ.get("QZN_ARTIFACTS", REPO / "artifacts"))  # gitignored
_kept: list[Path] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: renders a page in headless chromium")


def pytest_terminal_summary(terminalreporter):
    for path in _kept:
        terminalreporter.write_line(f"report artifact: {path}")


@pytest.fixture
def artifact():
    """artifact("name.png") -> a fresh path under artifacts/, listed at the end of the run."""

    def path_for(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        path.unlink(missing_ok=True)
        _kept.append(path)
        print(f"report artifact: {path}")
        return path

    return path_for


class RecordedLog:
    """A PREFIX.jsonl written by qzn-watch, and its records as parsed JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.docs = read_jsonl(path)

    def __str__(self) -> str:
        return str(self.path)


def record_log(program: Path, prefix: Path, stop_at: str, expression: str) -> RecordedLog:
    """Run `program` under a real gdb, watch `expression` from `stop_at` on, log to `prefix`."""
    watch = f"qzn-watch --quiet --color never --log {prefix} {expression}"
    cmd = gdb_base_command() + ["-ex", f"tbreak {stop_at}", "-ex", "run", "-ex", watch]
    result = subprocess.run(
        cmd + [str(program)], capture_output=True, text=True, env=quiet_env(), timeout=120
    )
    jsonl = prefix.with_suffix(".jsonl")
    assert jsonl.exists() and "Traceback" not in result.stderr, result.stdout + result.stderr
    return RecordedLog(jsonl)


def _recorded(build_c, tmp_path_factory, name, stop_at, expression, count) -> RecordedLog:
    log = record_log(build_c(name), tmp_path_factory.mktemp(name) / name, stop_at, expression)
    assert len(log.docs) == count, log.docs
    return log


@pytest.fixture(scope="session")
def mix_log(build_c, tmp_path_factory) -> RecordedLog:
    """tests/c/mix.c: 19 accesses of all kinds from two threads."""
    return _recorded(build_c, tmp_path_factory, "mix", "ready", "&area[11]", 19)


@pytest.fixture(scope="session")
def callers_log(build_c, tmp_path_factory) -> RecordedLog:
    """tests/c/callers.c: 20 stores by touch(), reached through via_a and via_b in turn."""
    return _recorded(build_c, tmp_path_factory, "callers", "main", "&the_data", 20)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless browser's path; skip without it, or fail under CI=true."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is missing: install it with 'apt-get install chromium'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
