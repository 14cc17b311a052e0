"""The log sinks: whole records on disk, kinds apart, one-line errors."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.sinks import logs as sinks_module
from gdb_qznusnih.sinks.formats import to_json
from gdb_qznusnih.sinks.logs import LogSinks, SinkError
from tests.records import T, block_seqs, make_record, plain_block, read_jsonl


def nth(seq: int) -> Record:
    """Record `seq` of a run: odd ones write the next value, even ones read it."""
    if seq % 2:
        return make_record(seq=seq, old=(seq - 1) & 0xFF, value=seq & 0xFF, time=T + seq / 1000)
    return make_record(
        seq=seq, kind="read", value=(seq - 1) & 0xFF, insn="movzbl (%rax),%eax", time=T + seq / 1000
    )


class Terminal:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    def __call__(self, text: str) -> None:
        self.chunks.append(text)


def read(path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def test_open_creates_the_three_logs_and_lists_them(tmp_path):
    prefix = str(tmp_path / "run")
    sinks = LogSinks(prefix, quiet=True)
    assert sinks.paths == [prefix + ".jsonl", prefix + ".reads.log", prefix + ".writes.log"]
    sinks.open()
    try:
        assert all(os.path.exists(p) for p in sinks.paths)
    finally:
        sinks.close()
    assert LogSinks(None).paths == []


def test_records_go_to_json_and_to_the_log_of_their_kind(tmp_path):
    prefix = str(tmp_path / "run")
    terminal = Terminal()
    sinks = LogSinks(prefix, writer=terminal)
    sinks.open()
    records = [nth(seq) for seq in range(1, 11)]
    for record in records:
        sinks.emit(record)
    sinks.close()
    lines = read(prefix + ".jsonl").splitlines()
    assert [json.loads(line) for line in lines] == [to_json(r) for r in records]
    reads = [r for r in records if r.kind == "read"]
    writes = [r for r in records if r.kind == "write"]
    assert read(prefix + ".reads.log") == "".join(plain_block(r) for r in reads)
    assert read(prefix + ".writes.log") == "".join(plain_block(r) for r in writes)
    assert "".join(terminal.chunks) == "".join(plain_block(r) for r in records)


def test_quiet_writes_nothing_to_the_terminal(tmp_path):
    terminal = Terminal()
    sinks = LogSinks(str(tmp_path / "q"), quiet=True, writer=terminal)
    sinks.open()
    sinks.emit(nth(1))
    sinks.close()
    assert terminal.chunks == []


def test_terminal_only_without_a_prefix():
    terminal = Terminal()
    sinks = LogSinks(None, writer=terminal)
    sinks.open()
    sinks.emit(nth(1))
    sinks.close()
    assert terminal.chunks == [plain_block(nth(1))]


def test_default_terminal_writer_is_fd_1(capfd):
    sinks = LogSinks(None)
    sinks.emit(nth(2))
    assert capfd.readouterr().out == plain_block(nth(2))


def test_text_logs_get_colour_only_when_asked(tmp_path):
    pytest.importorskip("pygments")
    terminal = Terminal()
    plain = LogSinks(str(tmp_path / "plain"), color=True, writer=terminal)
    plain.open()
    plain.emit(nth(1))
    plain.emit(nth(2))
    plain.close()
    assert "\x1b[" in "".join(terminal.chunks)
    assert "\x1b" not in read(tmp_path / "plain.writes.log") + read(tmp_path / "plain.reads.log")
    colored = LogSinks(str(tmp_path / "col"), color=True, color_files=True, quiet=True)
    colored.open()
    colored.emit(nth(1))
    colored.close()
    assert "\x1b[" in read(tmp_path / "col.writes.log")
    assert "\x1b" not in read(tmp_path / "col.jsonl")


def test_logs_are_0600_and_emptied_even_if_they_existed_wider(tmp_path):
    prefix = str(tmp_path / "priv")
    with open(prefix + ".jsonl", "w") as handle:
        handle.write("old\n")
    os.chmod(prefix + ".jsonl", 0o644)
    sinks = LogSinks(prefix, quiet=True)
    sinks.open()
    sinks.close()
    for path in sinks.paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read(prefix + ".jsonl") == ""


def test_logs_refuse_a_symlink_in_one_line(tmp_path):
    prefix = str(tmp_path / "link")
    os.symlink(tmp_path / "elsewhere", prefix + ".jsonl")
    with pytest.raises(SinkError) as caught:
        LogSinks(prefix).open()
    assert str(caught.value) == (
        f"refusing to write through the symlink {prefix}.jsonl; "
        "remove it or choose another --log prefix"
    )
    assert not (tmp_path / "elsewhere").exists()


def test_logs_are_0600_even_with_umask_0(tmp_path):
    old = os.umask(0)
    try:
        sinks = LogSinks(str(tmp_path / "pub"), quiet=True)
        sinks.open()
        sinks.close()
    finally:
        os.umask(old)
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in sinks.paths] == [0o600] * 3


@pytest.mark.parametrize("prefix", ["/etc/passwd/x", "/nonexistent-qzn-dir/run"])
def test_unwritable_prefix_is_a_one_line_sink_error(prefix):
    with pytest.raises(SinkError) as caught:
        LogSinks(prefix).open()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write {prefix}.jsonl: ")
    assert message.endswith("; choose a writable --log prefix")


def test_failure_on_a_later_file_closes_the_earlier_ones(tmp_path):
    prefix = str(tmp_path / "half")
    os.mkdir(prefix + ".writes.log")  # a directory where a log should go
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(SinkError, match=r"half\.writes\.log: it is not a regular file"):
        LogSinks(prefix).open()
    assert len(os.listdir("/proc/self/fd")) == before


def test_close_is_idempotent(tmp_path):
    sinks = LogSinks(str(tmp_path / "c"), quiet=True)
    sinks.open()
    sinks.close()
    sinks.close()


def test_a_short_write_is_completed(tmp_path, monkeypatch):
    real_write = os.write

    def short_write(fd, data):
        return real_write(fd, bytes(data[: max(1, len(data) // 3)]))

    monkeypatch.setattr(sinks_module.os, "write", short_write)
    sinks = LogSinks(str(tmp_path / "short"), quiet=True)
    sinks.open()
    sinks.emit(nth(1))
    sinks.close()
    monkeypatch.undo()
    assert json.loads(read(tmp_path / "short.jsonl")) == to_json(nth(1))
    assert read(tmp_path / "short.writes.log") == plain_block(nth(1))


def test_a_failing_write_is_a_one_line_sink_error_and_stays_failed(tmp_path, monkeypatch):
    sinks = LogSinks(str(tmp_path / "io"), quiet=True)
    sinks.open()
    sinks.emit(nth(1))

    def broken(fd, data):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(sinks_module.os, "write", broken)
    with pytest.raises(SinkError) as caught:
        sinks.emit(nth(2))
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"cannot write {tmp_path}/io.jsonl: Input/output error")
    monkeypatch.undo()
    with pytest.raises(SinkError):
        sinks.emit(nth(3))
    sinks.close()


def test_a_closed_descriptor_is_a_sink_error(tmp_path):
    sinks = LogSinks(str(tmp_path / "badf"), quiet=True)
    sinks.open()
    os.close(sinks._files["json"].fd)
    with pytest.raises(SinkError, match="Bad file descriptor"):
        sinks.emit(nth(1))
    sinks._files.pop("json")
    sinks.close()


def test_full_disk_is_a_one_line_sink_error_and_leaves_whole_lines(tiny_disk):
    prefix = str(tiny_disk / "full")
    sinks = LogSinks(prefix, quiet=True)
    sinks.open()
    emitted = 0
    with pytest.raises(SinkError) as caught:
        for seq in range(1, 100_000):
            sinks.emit(nth(seq))
            emitted += 1
    sinks.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "No space left on device" in message
    assert f"logging stopped and every log ends with record {emitted};" in message
    assert emitted > 10
    lines = read(prefix + ".jsonl").splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, emitted + 1))
    in_kind_logs = []
    for kind in ("reads", "writes"):
        text = read(f"{prefix}.{kind}.log")
        assert text == "" or text.endswith("\n")
        seqs = block_seqs(text)
        assert text.count("\n") == 4 * len(seqs)  # whole blocks: header, two frames, insn
        in_kind_logs += seqs
    assert sorted(in_kind_logs) == list(range(1, emitted + 1))  # the three logs agree


def _fail_on_fd(monkeypatch, fd: int, error: BaseException) -> None:
    """os.write raises `error` once, on the first write to `fd`."""
    real_write = os.write

    def write(target, data):
        if target == fd:
            monkeypatch.setattr(sinks_module.os, "write", real_write)
            raise error
        return real_write(target, data)

    monkeypatch.setattr(sinks_module.os, "write", write)


def _seqs(prefix: str) -> tuple[list[int], list[int]]:
    """Record numbers in PREFIX.jsonl, and in the two text logs together."""
    in_json = [record["seq"] for record in read_jsonl(prefix + ".jsonl")]
    text = read(prefix + ".reads.log") + read(prefix + ".writes.log")
    return in_json, sorted(block_seqs(text))


def test_a_failed_text_log_write_takes_the_json_line_back(tmp_path, monkeypatch):
    """The JSON line is written first: when its block cannot follow, neither stays."""
    prefix = str(tmp_path / "cut")
    sinks = LogSinks(prefix, quiet=True)
    sinks.open()
    sinks.emit(nth(1))
    sinks.emit(nth(2))
    _fail_on_fd(monkeypatch, sinks._files["write"].fd, OSError(errno.ENOSPC, "No space left"))
    with pytest.raises(SinkError) as caught:
        sinks.emit(nth(3))
    sinks.close()
    assert str(caught.value) == (
        f"cannot write {prefix}.writes.log: No space left; logging stopped and every log ends "
        "with record 2; free some space or choose another --log prefix"
    )
    assert _seqs(prefix) == ([1, 2], [1, 2])


def test_a_signal_between_the_two_writes_still_logs_the_record_in_both(tmp_path, monkeypatch):
    """gdb turns SIGINT into KeyboardInterrupt anywhere in Python: the record stays whole."""
    prefix = str(tmp_path / "sig")
    sinks = LogSinks(prefix, quiet=True)
    sinks.open()
    sinks.emit(nth(1))
    _fail_on_fd(monkeypatch, sinks._files["read"].fd, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sinks.emit(nth(2))
    sinks.emit(nth(3))
    sinks.close()
    assert _seqs(prefix) == ([1, 2, 3], [1, 2, 3])
    assert read(prefix + ".reads.log") == plain_block(nth(2))


def test_held_records_are_written_by_flush_one_write_per_file(tmp_path, monkeypatch):
    """After hold(), emit() writes nothing; flush() writes the batch whole, one os.write per
    file and one to the terminal, the same bytes as emitting one by one."""
    prefix = str(tmp_path / "held")
    terminal = Terminal()
    sinks = LogSinks(prefix, writer=terminal)
    sinks.open()
    sinks.hold()
    real_write, writes = os.write, []

    def counted(fd, data):
        writes.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(sinks_module.os, "write", counted)
    records = [nth(seq) for seq in range(1, 8)]
    for record in records:
        sinks.emit(record)
    assert (writes, terminal.chunks, _seqs(prefix)) == ([], [], ([], []))
    sinks.flush()
    sinks.flush()  # nothing held: nothing written
    files = sinks._files
    assert sorted(writes) == sorted(log.fd for log in files.values())
    sinks.close()
    assert [json.loads(line) for line in read(prefix + ".jsonl").splitlines()] == [
        to_json(r) for r in records
    ]
    assert read(prefix + ".writes.log") == "".join(plain_block(r) for r in records[::2])
    assert read(prefix + ".reads.log") == "".join(plain_block(r) for r in records[1::2])
    assert terminal.chunks == ["".join(plain_block(r) for r in records)]


def test_a_failed_flush_takes_the_whole_batch_back(tmp_path, monkeypatch):
    """A batch whose text log cannot be written leaves every log at the record before it."""
    prefix = str(tmp_path / "cutbatch")
    sinks = LogSinks(prefix, quiet=True)
    sinks.open()
    sinks.hold()
    sinks.emit(nth(1))
    sinks.flush()
    for seq in (2, 3, 4):
        sinks.emit(nth(seq))
    _fail_on_fd(monkeypatch, sinks._files["read"].fd, OSError(errno.ENOSPC, "No space left"))
    with pytest.raises(SinkError) as caught:
        sinks.flush()
    with pytest.raises(SinkError):
        sinks.emit(nth(5))  # failed stays failed
    sinks.close()
    assert str(caught.value) == (
        f"cannot write {prefix}.reads.log: No space left; logging stopped and every log ends "
        "with record 1; free some space or choose another --log prefix"
    )
    assert _seqs(prefix) == ([1], [1])


names = st.one_of(st.none(), st.text(max_size=8))
shapes = st.builds(
    Record,
    seq=st.just(0),
    kind=st.sampled_from(["read", "write"]),
    addr=st.integers(0, 2**48),
    length=st.sampled_from([1, 2, 4, 8]),
    old=st.one_of(st.none(), st.integers(0, 255)),
    value=st.just(0),
    pid=st.integers(1, 2**22),
    tid=st.just(0),
    pc=st.integers(0, 2**64 - 1),
    insn=names,
    time=st.just(0.0),
    frames=st.lists(
        st.builds(Frame, st.integers(0, 9), st.integers(0, 2**64 - 1), names, names),
        max_size=3,
    ).map(tuple),
    kind_from=st.sampled_from(["insn", "value"]),
    mode=st.one_of(st.none(), st.sampled_from(["user", "kernel"])),
    comm=names,
    extra=st.one_of(st.just({}), st.just({"note": "50%"})),
    more_frames=st.booleans(),
    changed_unseen=st.booleans(),
)
hits = st.tuples(
    st.integers(0, 2),  # which shape
    st.integers(0, 2**64 - 1),  # value
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),  # old
    st.integers(1, 2**31),  # tid
    st.floats(0, 4e9, allow_nan=False),  # time
)


@settings(deadline=None, max_examples=80)
@given(bases=st.lists(shapes, min_size=1, max_size=3), hits=st.lists(hits, max_size=12))
def test_templated_output_equals_the_full_encoder_and_renderer(bases, hits):
    """Records that share a shape reuse its templates; the output must not change."""
    # As in gdb, the same (level, pc) names the same function and line (until symbols change).
    first: dict[tuple[int, int], Frame] = {}
    bases = [
        dataclasses.replace(b, frames=tuple(first.setdefault((f.level, f.pc), f) for f in b.frames))
        for b in bases
    ]
    records = []
    for seq, (which, value, old, tid, time) in enumerate(hits, 1):
        base = bases[which % len(bases)]
        old = None if base.old is None else old
        records.append(dataclasses.replace(base, seq=seq, value=value, old=old, tid=tid, time=time))
    terminal = Terminal()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "h")
        sinks = LogSinks(prefix, writer=terminal)
        sinks.open()
        for record in records:
            sinks.emit(record)
        sinks.close()
        lines = read(prefix + ".jsonl")
        reads = read(prefix + ".reads.log")
        writes = read(prefix + ".writes.log")
    assert lines == "".join(json.dumps(to_json(r)) + "\n" for r in records)
    assert reads == "".join(plain_block(r) for r in records if r.kind == "read")
    assert writes == "".join(plain_block(r) for r in records if r.kind == "write")
    assert "".join(terminal.chunks) == "".join(plain_block(r) for r in records)
