"""The HTML report of a real run, rendered by headless chromium: sections, counts, colours.

The screenshot is kept under artifacts/ (gitignored; QZN_ARTIFACTS moves it) and its path is
printed at the end of the run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from gdb_qznusnih.report import cli as report

pytestmark = [pytest.mark.browser, pytest.mark.gdb]

# Appended to a copy of the page only: the layout facts the browser computed, as attributes
# that --dump-dom serialises.  The report itself has no script.
PROBE = """<script>
for (const section of document.querySelectorAll("section")) {
  const style = getComputedStyle(section);
  section.dataset.height = Math.round(section.getBoundingClientRect().height);
  section.dataset.border = style.borderLeftColor;
}
for (const svg of document.querySelectorAll("svg.figure")) {
  const box = svg.getBoundingClientRect();
  svg.dataset.width = Math.round(box.width);
  svg.dataset.height = Math.round(box.height);
  svg.dataset.boxes = svg.querySelectorAll("g.frame").length;
  svg.dataset.marks = svg.querySelectorAll("circle.write-mark").length;
  svg.dataset.bars = svg.querySelectorAll("rect.rate-read, rect.rate-write").length;
  svg.dataset.labels = svg.querySelectorAll("text.axis-label").length;
}
document.body.dataset.resources = performance.getEntriesByType("resource").length;
document.body.dataset.scrollWidth = document.documentElement.scrollWidth;
document.body.dataset.clientWidth = document.documentElement.clientWidth;
</script>"""

READ_RGB, WRITE_RGB = "rgb(14, 116, 144)", "rgb(185, 28, 28)"


def chromium_run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", *args,
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


class Dom(HTMLParser):
    """Attributes by element id, sections, change rows and the text of elements with an id."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.sections: list[dict] = []
        self.body: dict = {}
        self.changes = 0
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if tag == "section":
            self.sections.append(attrs)
        if tag == "tr" and attrs.get("class") == "change":
            self.changes += 1
        if "id" in attrs:
            self.by_id[attrs["id"]] = attrs
            self.text[attrs["id"]] = ""
            self._open.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag in ("td", "p") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for element in self._open:
            self.text[element] += data


def rendered(chromium: str, log, tmp_path, window: str) -> tuple[Dom, object]:
    """The end-of-run report of `log` as chromium laid it out in a window of `window` px
    (the PROBE's facts on a copy), and the report's own path."""
    html_path = tmp_path / "mix.html"
    report.write_html_report(str(log), str(html_path))
    probed = tmp_path / "probed.html"
    probed.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    result = chromium_run(chromium, f"--window-size={window}", "--dump-dom", probed.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    return Dom(result.stdout), html_path


def test_the_html_report_renders_in_chromium(chromium, mix_log, tmp_path, artifact):
    dom, html_path = rendered(chromium, mix_log, tmp_path, "1280,3200")
    sections = {s["id"]: s for s in dom.sections}
    assert list(sections) == ["summary", "figures", "reads", "writes", "writers", "timeline"]
    assert all(int(s["data-height"]) > 40 for s in sections.values()), sections
    assert sections["reads"]["data-border"] == READ_RGB
    assert sections["writes"]["data-border"] == WRITE_RGB
    assert dom.body["data-resources"] == "0", "the page loads nothing"
    docs = mix_log.docs
    assert dom.text["total-reads"] == str(sum(d["kind"] == "read" for d in docs)) == "10"
    assert dom.text["total-writes"] == str(sum(d["kind"] == "write" for d in docs)) == "9"
    changed = [d for d in docs if d["kind"] == "write" and d["old"] != d["value"]]
    assert dom.changes == len(changed) == 7
    assert re.search(r"19 of 19 records", dom.text["log"])

    docs_by_kind = {kind: [d for d in docs if d["kind"] == kind] for kind in ("read", "write")}
    for element, kind in (("flame-reads", "read"), ("flame-writes", "write")):
        svg = dom.by_id[element]
        assert int(svg["data-width"]) > 900 and int(svg["data-height"]) > 40, svg
        # one box per distinct frame name at each depth of the kind's stacks, plus the root
        paths = {
            tuple(f["func"] or f["pc"] for f in reversed(d["frames"])) for d in docs_by_kind[kind]
        }
        prefixes = {path[:depth] for path in paths for depth in range(1, len(path) + 1)}
        assert int(svg["data-boxes"]) == len(prefixes) + 1
    value_plot, rate_plot = dom.by_id["value-plot"], dom.by_id["rate-plot"]
    assert int(value_plot["data-marks"]) == len(changed)
    assert int(value_plot["data-labels"]) == int(rate_plot["data-labels"]) == 2
    assert int(rate_plot["data-bars"]) > 0 and int(rate_plot["data-height"]) > 100

    shot = artifact("report-mix.png")
    args = ["--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,3200"]
    result = chromium_run(chromium, *args, html_path.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_report_fits_a_1400_px_window_without_a_horizontal_scrollbar(
    chromium, mix_log, tmp_path
):
    body = rendered(chromium, mix_log, tmp_path, "1400,1000")[0].body
    assert int(body["data-scroll-width"]) <= int(body["data-client-width"]) <= 1400, body
