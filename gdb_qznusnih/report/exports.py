"""`qznusnih report LOG --format folded|chrome`: the log in formats other tools read.  Pure.

- folded: one line per unique stack, `KIND;outermost;...;innermost COUNT`, as Brendan
  Gregg's stackcollapse scripts write it (flamegraph.pl, inferno and speedscope read it).
  Kernel frames carry flamegraph.pl's `_[k]` suffix, so they get its kernel colour.
- chrome: Trace Event JSON (the format of chrome://tracing, which Perfetto opens), one
  instant event per access on its thread's track, the value and call site as its args.

Both read the log once, one line at a time: folded keeps one count per unique stack, chrome
holds nothing (the output is a stream of chunks).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

from gdb_qznusnih.classify.kernel_layout import kernel_limit_of
from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.record.summary import Site, _site_key
from gdb_qznusnih.report.build import Filters, read_log
from gdb_qznusnih.sinks.formats import to_json

KERNEL_SUFFIX = "_[k]"
_FOLDED_UNSAFE = str.maketrans({";": "_", " ": "_", "\n": "_", "\r": "_"})
# chrome://tracing wants microseconds; "ns" only changes how the viewer shows them.
_TRACE_HEAD = '{"displayTimeUnit":"ns","traceEvents":[\n'
_TRACE_TAIL = "\n]}\n"


def matching_records(path: str, filters: Filters | None = None) -> Iterator[Record]:
    """The records of the log at `path` that pass `filters`, in log order."""
    matches = None
    for _, record in read_log(path):
        if matches is None:
            matches = (filters or Filters()).matcher(record.time)
        if matches(record):
            yield record


# ---------------------------------------------------------------- folded stacks


def frame_name(frame: Frame, kernel_limit: int | None) -> str:
    """A frame as one folded-stack word: its function (or pc), `_[k]` for a kernel frame."""
    name = (frame.func or f"{frame.pc:#x}").translate(_FOLDED_UNSAFE)
    if kernel_limit is not None and frame.pc >= kernel_limit:
        return name + KERNEL_SUFFIX
    return name


def _kernel_limit(record: Record) -> int | None:
    """Where kernel addresses start for this record's frames; None when it has none (only
    whole-system and kernel-mode records do: they carry a mode)."""
    if record.mode is None:
        return None
    return kernel_limit_of(frame.pc for frame in record.frames)


def folded_stack(record: Record) -> str:
    """`KIND;outermost;...;innermost` for one record."""
    limit = _kernel_limit(record)
    names = [frame_name(frame, limit) for frame in reversed(record.frames)]
    return ";".join([record.kind, *names])


def folded_chunks(path: str, filters: Filters | None = None) -> Iterator[str]:
    """The folded stacks of the log, most frequent first (then by stack, for a stable order)."""
    counts = Counter(folded_stack(record) for record in matching_records(path, filters))
    for stack, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        yield f"{stack} {count}\n"


# ---------------------------------------------------------------- chrome trace events


def trace_event(record: Record) -> dict:
    """One access as a thread-scoped instant event (`ph` "i", `s` "t"), times in µs."""
    doc = to_json(record)
    args = {key: doc[key] for key in ("seq", "addr", "len", "old", "value", "pc", "insn")}
    args["site"] = Site(*_site_key(record), 0).describe()
    if record.mode is not None:
        args["mode"] = record.mode
    return {
        "name": record.kind,
        "cat": "access",
        "ph": "i",
        "s": "t",
        "ts": round(record.time * 1e6, 3),
        "pid": record.pid,
        "tid": record.tid,
        "args": args,
    }


def _thread_name(pid: int, tid: int, comm: str | None) -> dict:
    name = f"{comm or 'tid'} {tid}"
    return {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def chrome_chunks(path: str, filters: Filters | None = None) -> Iterator[str]:
    """The log as a Trace Event JSON document, one event per line, streamed."""
    yield _TRACE_HEAD
    named: set[tuple[int, int]] = set()
    separator = ""
    for record in matching_records(path, filters):
        events = [trace_event(record)]
        if (record.pid, record.tid) not in named:
            named.add((record.pid, record.tid))
            events.insert(0, _thread_name(record.pid, record.tid, record.comm))
        for event in events:
            yield separator + json.dumps(event, separators=(",", ":"))
            separator = ",\n"
    yield _TRACE_TAIL
