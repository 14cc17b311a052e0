"""The HTML report's pictures, as inline SVG: no script, no external URL.  Pure.

- a flame graph of the read stacks and one of the write stacks (one box per frame, width by
  count, a hover title with function, file:line and count; kernel frames in their own colour);
- the watched value over time: a step plot with each value-changing write as a mark
  coloured by call site, and `changed_unseen` records marked;
- the access rate over time: reads and writes per interval.

`Figures.add` sees each counted record once while the report is built and keeps only what
the pictures need, bounded whatever the log's length: one node per distinct call path, rate
bins that double their width instead of growing in number, and value points thinned to a
few per pixel column (the first, lowest, highest and last value of each).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from html import escape

from gdb_qznusnih.classify.kernel_layout import kernel_limit_of
from gdb_qznusnih.counted import counted
from gdb_qznusnih.record.access import WRITE, Record
from gdb_qznusnih.record.summary import Site, _site_key

WIDTH = 1100  # the SVGs' user units; they scale to the page's width
FRAME_HEIGHT = 17
MIN_BOX = 0.4  # narrower boxes are not drawn (their count is still in the parent's width)
CHAR_WIDTH = 6.6  # of the 11 px monospace labels, to cut names to their box
MAX_BINS = 400  # rate bins: past this the bin width doubles
POINT_COLUMNS = 600  # value plot: up to twice as many time columns, 4 points kept in each
MAX_IDENTITIES = 4096  # call paths looked up by identity before they are merged by value
SITE_COLOURS = ("#b91c1c", "#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04")
OTHER_SITES = "#71717a"
KERNEL_FILL = "#93c5fd"
UNSEEN = "#f59e0b"


# ---------------------------------------------------------------- collecting


@dataclass
class StackNode:
    name: str
    where: str | None  # file:line of the first frame seen here
    kernel: bool
    count: int = 0
    other_lines: bool = False  # frames of other lines were merged into this box
    children: dict[str, StackNode] = field(default_factory=dict)


@dataclass
class Point:
    time: float
    value: int
    site: str | None  # None: not a write's mark (a changed_unseen record)


class _Rates:
    """Reads and writes per bin from `start`; the bin width doubles to keep MAX_BINS."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.width = 0.001
        self.bins: dict[int, list[int]] = {}

    def add(self, time: float, kind: str) -> None:
        if self.start is None:
            self.start = time
        index = max(0, int((time - self.start) / self.width))  # clocks may step back
        while index >= MAX_BINS:
            self._coarsen()
            index = int((time - self.start) / self.width)
        counts = self.bins.setdefault(index, [0, 0])
        counts[kind == WRITE] += 1

    def _coarsen(self) -> None:
        merged: dict[int, list[int]] = {}
        for index, (reads, writes) in self.bins.items():
            counts = merged.setdefault(index // 2, [0, 0])
            counts[0] += reads
            counts[1] += writes
        self.bins, self.width = merged, self.width * 2


class _Points:
    """Value points in time columns: each column keeps its first, lowest, highest and last
    point; past 2 * POINT_COLUMNS columns the column width doubles (O(1) a point)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.width = 1e-6
        self.columns: dict[int, list[Point]] = {}  # index -> [first, lowest, highest, last]

    def add(self, point: Point) -> None:
        if self.start is None:
            self.start = point.time
        index = max(0, int((point.time - self.start) / self.width))
        while index >= 2 * POINT_COLUMNS:
            self._coarsen()
            index = max(0, int((point.time - self.start) / self.width))
        column = self.columns.get(index)
        if column is None:
            self.columns[index] = [point, point, point, point]
            return
        if point.value < column[1].value:
            column[1] = point
        if point.value > column[2].value:
            column[2] = point
        column[3] = point

    def _coarsen(self) -> None:
        merged: dict[int, list[Point]] = {}
        for index in sorted(self.columns):
            column = self.columns[index]
            into = merged.get(index // 2)
            if into is None:
                merged[index // 2] = column
                continue
            into[1] = min(into[1], column[1], key=_value)
            into[2] = max(into[2], column[2], key=_value)
            into[3] = column[3]
        self.columns, self.width = merged, self.width * 2

    @property
    def points(self) -> list[Point]:
        """The kept points in time order, each once."""
        kept = []
        for index in sorted(self.columns):
            unique = {id(p): p for p in self.columns[index]}.values()
            kept.extend(sorted(unique, key=lambda p: p.time))
        return kept


def _value(point: Point) -> int:
    return point.value


class Figures:
    """What the pictures need from the counted records."""

    def __init__(self) -> None:
        self._by_identity: dict[int, _Path] = {}
        self._retired: list[_Path] = []  # merged by value when _by_identity fills up
        self.rates = _Rates()
        self.values = _Points()
        self.unseen = _Points()
        self.site_counts: dict[str, int] = {}
        self.last_time: float | None = None

    def add(self, record: Record, changed_value: bool) -> None:
        """One counted record; `changed_value`: a write that changed the value.

        The report's hot path with the log decoder: one identity lookup, two counters."""
        self.last_time = record.time
        frames = record.frames
        path = self._by_identity.get(id(frames))
        if path is None or path.frames is not frames:  # held by the path: the id stays its
            path = self._new_path(frames)
        key = (record.kind, record.mode is not None)
        counts = path.counts
        counts[key] = counts.get(key, 0) + 1
        self.rates.add(record.time, record.kind)
        if changed_value and record.value is not None:
            if path.site is None:
                path.site = Site(*_site_key(record), 0).describe()
            self.site_counts[path.site] = self.site_counts.get(path.site, 0) + 1
            self.values.add(Point(record.time, record.value, path.site))
        if record.changed_unseen:
            value = record.old if record.kind == WRITE else record.value
            if value is not None:
                self.unseen.add(Point(record.time, value, None))

    def _new_path(self, frames) -> _Path:
        """Counts for a call path not seen in this tuple.  Paths are found by the frames
        tuple's identity (the log decoder hands out one tuple per path; hashing frames costs
        a µs a record); equal tuples that are other objects are merged by value later."""
        if len(self._by_identity) >= MAX_IDENTITIES:
            self._retired = _merge_paths([*self._retired, *self._by_identity.values()])
            self._by_identity = {}
        path = self._by_identity[id(frames)] = _Path(frames)
        return path

    def stacks(self, kind: str) -> StackNode:
        """The call tree of one kind's accesses, rooted at "all reads" or "all writes"."""
        root = StackNode(f"all {kind}s", None, False)
        for path in _merge_paths([*self._retired, *self._by_identity.values()]):
            for (path_kind, has_mode), count in path.counts.items():
                if path_kind == kind:
                    _add_path(root, path.frames, has_mode, count)
        return root


@dataclass
class _Path:
    frames: tuple
    counts: dict[tuple[str, bool], int] = field(default_factory=dict)  # (kind, mode?) -> n
    site: str | None = None


def _merge_paths(paths: list[_Path]) -> list[_Path]:
    """One _Path per distinct frames value."""
    merged: dict[tuple, _Path] = {}
    for path in paths:
        into = merged.get(path.frames)
        if into is None:
            merged[path.frames] = _Path(path.frames, dict(path.counts), path.site)
            continue
        for key, count in path.counts.items():
            into.counts[key] = into.counts.get(key, 0) + count
    return list(merged.values())


def _add_path(root: StackNode, frames, has_mode: bool, count: int) -> None:
    node = root
    node.count += count
    # Only whole-system and kernel-mode records (they carry a mode) have kernel frames.
    limit = kernel_limit_of(frame.pc for frame in frames) if has_mode else None
    for frame in reversed(frames):
        name = frame.func or f"{frame.pc:#x}"
        where = f"{frame.file}:{frame.line}" if frame.file else None
        child = node.children.get(name)
        if child is None:
            kernel = limit is not None and frame.pc >= limit
            child = node.children[name] = StackNode(name, where, kernel)
        elif child.where != where:
            child.other_lines = True
        child.count += count
        node = child


# ---------------------------------------------------------------- drawing


def _hue(name: str) -> str:
    """A warm colour that stays the same for a function name across pictures and runs."""
    h = zlib.crc32(name.encode("utf-8", "replace"))
    return f"hsl({(h % 50) + 5},{70 + (h >> 8) % 20}%,{58 + (h >> 16) % 14}%)"


def _svg(height: float, body: str, label: str, element_id: str) -> str:
    return (
        f'<svg id="{element_id}" class="figure" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="100%" '
        'font-family="ui-monospace,monospace" '
        f'font-size="11">{body}</svg>'
    )


def _depth(node: StackNode) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0)


def flame_graph(root: StackNode, element_id: str) -> str:
    """The stacks of one kind: callers below, callees above (root at the bottom)."""
    if not root.count:
        return '<p class="muted">none</p>'
    depth = _depth(root)
    height = depth * FRAME_HEIGHT + 4
    boxes: list[str] = []
    scale = WIDTH / root.count

    def draw(node: StackNode, x: float, level: int) -> None:
        width = node.count * scale
        if width < MIN_BOX:
            return
        y = height - (level + 1) * FRAME_HEIGHT
        share = 100 * node.count / root.count
        title = node.name
        if node.where:
            title += f" at {node.where}" + (" (and other lines)" if node.other_lines else "")
        if node.kernel:
            title += " [kernel]"
        title += f": {counted(node.count, 'access')} ({share:.1f}%)"
        fill = KERNEL_FILL if node.kernel else ("#e4e4e7" if level == 0 else _hue(node.name))
        label = ""
        fits = int((width - 4) / CHAR_WIDTH)
        if fits >= 3:
            text = node.name if len(node.name) <= fits else node.name[: fits - 1] + "…"
            label = f'<text x="{x + 2:.2f}" y="{y + 12}">{escape(text)}</text>'
        kind = "kernel" if node.kernel else "user"
        boxes.append(
            f'<g class="frame {kind}"><title>{escape(title)}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{fill}" rx="1.5"/>{label}</g>'
        )
        child_x = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, child_x, level + 1)
            child_x += child.count * scale

    draw(root, 0.0, 0)
    return _svg(height, "".join(boxes), f"flame graph of {root.name}", element_id)


# -- axes


def nice_ticks(low: float, high: float, count: int = 6, binary: bool = False) -> list[float]:
    """Round tick values covering low..high: 1-2-2.5-5 steps, or powers of 2 (`binary`,
    for values shown in hex)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    if binary:
        step = 2 ** max(0, math.ceil(math.log2(raw)))
    else:
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, tick = [], first
    while tick <= high + step * 1e-9:
        ticks.append(round(tick, 12))
        tick += step
    return ticks


@dataclass(frozen=True)
class _Frame:
    """The plot area inside an SVG and the data ranges it shows."""

    x0: float
    x1: float
    y0: float  # the bottom (larger y)
    y1: float
    t_max: float
    v_min: float
    v_max: float

    def x(self, t: float) -> float:
        return self.x0 + (self.x1 - self.x0) * (t / self.t_max if self.t_max else 0.5)

    def y(self, v: float) -> float:
        span = self.v_max - self.v_min
        return self.y0 - (self.y0 - self.y1) * ((v - self.v_min) / span if span else 0.5)


def _axes(frame: _Frame, x_label: str, y_label: str, y_format, binary: bool = False) -> str:
    parts = [
        f'<line x1="{frame.x0}" y1="{frame.y0}" x2="{frame.x1}" y2="{frame.y0}" stroke="#52525b"/>',
        f'<line x1="{frame.x0}" y1="{frame.y0}" x2="{frame.x0}" y2="{frame.y1}" stroke="#52525b"/>',
    ]
    for t in nice_ticks(0, frame.t_max):
        x = frame.x(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.y0}" x2="{x:.1f}" y2="{frame.y0 + 4}" '
            'stroke="#52525b"/>'
            f'<text x="{x:.1f}" y="{frame.y0 + 16}" text-anchor="middle">{t:g}</text>'
        )
    for v in nice_ticks(frame.v_min, frame.v_max, 4, binary):
        y = frame.y(v)
        parts.append(
            f'<line x1="{frame.x0 - 4}" y1="{y:.1f}" x2="{frame.x1}" y2="{y:.1f}" '
            f'stroke="#e4e4e7"/><text x="{frame.x0 - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(y_format(v))}</text>'
        )
    middle = (frame.x0 + frame.x1) / 2
    parts.append(
        f'<text class="axis-label" x="{middle:.0f}" y="{frame.y0 + 32}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" x="14" y="{(frame.y0 + frame.y1) / 2:.0f}" '
        f'text-anchor="middle" transform="rotate(-90 14 {(frame.y0 + frame.y1) / 2:.0f})">'
        f"{escape(y_label)}</text>"
    )
    return "".join(parts)


def value_plot(figures: Figures, start: float, initial: int | None, length: int) -> str:
    """The value over time since `start` (the log's first record), stepping at each change."""
    points = figures.values.points
    if not points:
        return '<p class="muted">the value never changed</p>'
    unseen = figures.unseen.points
    end = max(figures.last_time or start, points[-1].time) - start
    values = [p.value for p in points + unseen] + ([initial] if initial is not None else [])
    frame = _Frame(90, WIDTH - 10, 200, 12, end, min(values), max(values))
    width = 2 * length

    def hex_label(v: float) -> str:
        return f"0x{int(v):0{width}x}"

    level = initial if initial is not None else points[0].value
    path = [f"M{frame.x(0):.1f},{frame.y(level):.1f}"]
    for p in points:
        path.append(f"H{frame.x(p.time - start):.1f}V{frame.y(p.value):.1f}")
    path.append(f"H{frame.x(end):.1f}")
    colours = _site_colours(figures.site_counts)
    marks = [
        f'<circle class="write-mark" cx="{frame.x(p.time - start):.1f}" '
        f'cy="{frame.y(p.value):.1f}" '
        f'r="3" fill="{colours.get(p.site, OTHER_SITES)}"><title>'
        f"{escape(hex_label(p.value))} by {escape(p.site or '?')} at +{p.time - start:.6f} s"
        "</title></circle>"
        for p in points
    ]
    marks += [
        f'<path class="unseen-mark" d="M{frame.x(p.time - start):.1f},{frame.y(p.value) - 6:.1f}'
        f'l5,6l-5,6l-5,-6z" fill="none" stroke="{UNSEEN}" stroke-width="2"><title>'
        f"changed unseen: {escape(hex_label(p.value))} at +{p.time - start:.6f} s</title></path>"
        for p in unseen
    ]
    body = (
        _axes(frame, "seconds since the first record", "value", hex_label, binary=True)
        + f'<path class="value-line" d="{"".join(path)}" fill="none" stroke="#18181b" '
        'stroke-width="1.5"/>' + "".join(marks)
    )
    svg = _svg(240, body, "the watched value over time", "value-plot")
    return svg + _legend(colours, bool(unseen))


def _site_colours(site_counts: dict[str, int]) -> dict[str, str]:
    top = sorted(site_counts, key=lambda site: (-site_counts[site], site))
    return dict(zip(top, SITE_COLOURS))


def _legend(colours: dict[str, str], unseen: bool) -> str:
    items = [
        f'<span class="legend-item"><span class="swatch" style="background:{colour}"></span>'
        f"<code>{escape(site)}</code></span>"
        for site, colour in colours.items()
    ]
    if unseen:
        items.append(
            f'<span class="legend-item"><span class="swatch" style="border:2px solid {UNSEEN}">'
            "</span>changed unseen</span>"
        )
    return f'<p class="legend">{"".join(items)}</p>'


def rate_plot(figures: Figures) -> str:
    """Reads and writes per second, one bar pair per interval."""
    rates = figures.rates
    if not rates.bins:
        return '<p class="muted">no accesses</p>'
    last = max(rates.bins)
    per_second = [
        [count / rates.width for count in rates.bins.get(index, (0, 0))]
        for index in range(last + 1)
    ]
    peak = max(r + w for r, w in per_second) or 1
    frame = _Frame(90, WIDTH - 10, 200, 12, (last + 1) * rates.width, 0, peak)
    bar = (frame.x1 - frame.x0) / (last + 1)
    bars = []
    for index, (reads, writes) in enumerate(per_second):
        x = frame.x0 + index * bar
        y_reads, y_all = frame.y(reads), frame.y(reads + writes)
        if reads:
            bars.append(
                f'<rect class="rate-read" x="{x:.2f}" y="{y_reads:.1f}" width="{bar:.2f}" '
                f'height="{frame.y0 - y_reads:.1f}" fill="var(--read)"/>'
            )
        if writes:
            bars.append(
                f'<rect class="rate-write" x="{x:.2f}" y="{y_all:.1f}" width="{bar:.2f}" '
                f'height="{y_reads - y_all:.1f}" fill="var(--write)"/>'
            )
    body = _axes(frame, "seconds since the first record", "accesses per second", _si) + "".join(
        bars
    )
    note = f"bins of {rates.width * 1000:g} ms"
    return _svg(240, body, f"access rate over time, {note}", "rate-plot") + (
        f'<p class="legend muted">reads (below) and writes (above) per second, {note}</p>'
    )


def _si(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


FIGURES_CSS = """
svg.figure { display: block; max-width: 100%; height: auto; margin: .4em 0; }
svg.figure text { fill: #18181b; pointer-events: none; }
svg.figure g.frame:hover rect { stroke: #18181b; stroke-width: .8; }
p.legend { font-size: 13px; margin: .2em 0 .6em; }
.legend-item { margin-right: 1.2em; white-space: nowrap; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .35em;
          border-radius: 50%; vertical-align: -.05em; }
"""
