"""The symbolizer (gdb as a symbol server, never attached) against the gdb engine's own records
on the same process: for every access, the same instruction and text, and the same frames
(function, file, line, inlined frames), for PIE and non-PIE, -O0 and -O2, a stripped build,
libc and a dlopen'ed library."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from gdb_qznusnih.perf.modules import ModuleMap
from gdb_qznusnih.perf.symbolizer import Symbolizer
from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.sinks.formats import frame_to_json
from tests.conftest import REPO, WITH_GDB_ENGINE, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

TRUTH = REPO / "tests" / "symbols" / "gdb_truth.py"
# call_from_inline's store, load_plain, add_three's load and store, memset, the plugin's two,
# main's check of the result
SITES = 8
OWN_FRAME0 = ["store_inline", "load_plain", "add_three", "add_three"]
PLUGIN_FRAME0 = ["bump", "bump"]


class Target:
    """tests/c/symbols.c started with its plugin, blocked on stdin until a byte comes."""

    def __init__(self, program, *args) -> None:
        self.go_read, self.go_write = os.pipe()
        self.process = subprocess.Popen(
            [str(program), *map(str, args)], stdin=self.go_read, stdout=subprocess.PIPE, text=True
        )
        os.close(self.go_read)
        self.address = self.process.stdout.readline().strip()
        assert self.address.startswith("0x"), self.process.wait()

    def finish(self) -> int:
        os.close(self.go_write)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def plugin(build_c):
    return build_c("symbols_plugin", extra=("-O2", "-shared", "-fPIC"))


def gdb_engine_records(target: Target, tmp_path) -> tuple[list[dict], dict]:
    """The gdb engine attached to the target: its records and, per trap pc, its instructions
    (truth["before"][pc]: [start, text] of the one ending there, truth["at"][pc]: the one at)."""
    truth_log, prefix = tmp_path / "truth.jsonl", tmp_path / "watch"
    command = [
        "gdb", "-nx", "-batch", "-p", str(target.process.pid), *WITH_GDB_ENGINE, "-x", str(TRUTH),
        # The target runs on only once the watch is armed: the byte waits in the pipe.
        "-ex", f"python import os; os.write({target.go_write}, b'g')",
        "-ex", f"qzn-watch --quiet --no-html --bt-depth 64 --log {prefix} {target.address}",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, pass_fds=(target.go_write,),
        env=quiet_env(QZN_TRUTH_LOG=str(truth_log)),
    )  # fmt: skip
    assert target.finish() == 0, done.stderr
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    truth: dict[str, dict] = {"before": {}, "at": {}}
    for line in truth_log.read_text().splitlines():
        kind, pc, found = json.loads(line)
        truth[kind][pc] = found
    return records, truth


def assert_same_as_gdb_engine(symbolizer: Symbolizer, records, truth) -> None:
    trap_of = {found[0]: trap for trap, found in truth["before"].items() if found is not None}
    assert len(records) == SITES
    symbolizer.resolve(traps=trap_of.values())
    for record in records:
        trap = trap_of[int(record["pc"], 16)]
        site = symbolizer.site(trap)
        assert [site.start, site.text] == truth["before"][trap]
        assert site.text_at_ip == truth["at"][trap][1]
        frames = list(site.frames)
        while len(frames) < len(record["frames"]):
            frames += symbolizer.caller(int(record["frames"][len(frames)]["pc"], 16))
        got = [frame_to_json(Frame(level, *frame)) for level, frame in enumerate(frames)]
        assert got == record["frames"]


@pytest.mark.parametrize(
    "flags",
    [(), ("-O2",), ("-O2", "-no-pie"), ("-O2", "-s")],
    ids=["O0", "O2", "O2-no-pie", "O2-stripped"],
)
def test_symbolizer_matches_the_gdb_engine(build_c, plugin, tmp_path, flags):
    target = Target(build_c("symbols", extra=flags), plugin)
    try:
        with Symbolizer(ModuleMap.from_pid(target.process.pid)) as symbolizer:
            assert symbolizer.notes == []
            records, truth = gdb_engine_records(target, tmp_path)
            assert_same_as_gdb_engine(symbolizer, records, truth)
    finally:
        target.kill()
    frame0 = [record["frames"][0]["func"] for record in records]
    own = [None] * 4 + [None] if "-s" in flags else OWN_FRAME0 + ["main"]
    assert frame0[:4] + frame0[-1:] == own and frame0[5:7] == PLUGIN_FRAME0
    assert frame0[4].startswith("__mem")  # libc's memset variant for this CPU
