"""Colour from structure: backtraces coloured from Frame fields, as the lexer colours the text."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("pygments")

from gdb_qznusnih.record.access import Frame  # noqa: E402
from gdb_qznusnih.sinks.colour import Colorizer, html_painter  # noqa: E402
from gdb_qznusnih.sinks.lexer import backtrace_lexer, token_types  # noqa: E402
from gdb_qznusnih.sinks.render import backtrace_roles, format_backtrace  # noqa: E402
from tests.conftest import REPO  # noqa: E402

FRAME_SETS = [
    (Frame(0, 0x55D0C3A08168, "round_once", "mix.c", 40, "i=3"),),
    (
        Frame(0, 0x7F0000001000, None),
        Frame(1, 0x7F0000002000, "__memset_avx2_unaligned_erms"),
        Frame(2, 0x401000, "ns::f<int>", "/src/a b.cc", 7, 'p=0x0, s=0x4020 "hi, there"'),
        Frame(12, 0x401100, "main", "m.c", None, "argc=1, argv=<optimized out>"),
    ),
    (Frame(3, 0x1234, "std::function<void (int)>::operator()", "f.h", 9, "c=99 'c'"),),
]


def merged(pairs):
    """(type, text) with neighbours of one type joined: the same colours, however split."""
    out = []
    for ttype, text in pairs:
        if not text:
            continue
        if out and out[-1][0] == ttype:
            out[-1] = (ttype, out[-1][1] + text)
        else:
            out.append((ttype, text))
    return out


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("show_args", [False, True])
def test_roles_colour_the_text_as_the_lexer_does(frames, show_args):
    types = token_types()
    roles = list(backtrace_roles(frames, show_args))
    assert "".join(text for _, text in roles) == format_backtrace(frames, show_args)
    from_fields = merged((types[role], text) for role, text in roles)
    lexed = merged(backtrace_lexer().get_tokens(format_backtrace(frames, show_args)))
    assert from_fields == lexed


def test_terminal_and_html_share_the_painter():
    frames = FRAME_SETS[1]
    terminal = Colorizer().painter.backtrace(frames)
    html, css = html_painter(None)
    page = html.backtrace(frames)
    assert "\x1b[" in terminal
    assert "<span" in page and "&lt;int&gt;" in page and ".hl" in css


def test_colouring_never_runs_the_lexer():
    script = (
        "from gdb_qznusnih.sinks import lexer\n"
        "from gdb_qznusnih.sinks.colour import Colorizer\n"
        "from gdb_qznusnih.record.access import Frame, Record\n"
        "from gdb_qznusnih.sinks.formats import BlockRenderer\n"
        "r = Record(1, 'write', 16, 1, 0, 1, 2, 2, 4096, 'movb $0x1,(%rax)', 0.0,"
        " (Frame(0, 4096, 'main', 'm.c', 3, 'argc=1'),))\n"
        "assert '\\x1b[' in BlockRenderer(Colorizer(), show_args=True).render(r)\n"
        "print(lexer._lexer_class.cache_info().misses)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "0", done.stderr


def test_without_pygments_painters_are_plain_and_a_style_is_refused():
    script = (
        "import sys\n"
        "sys.modules['pygments'] = None  # makes `import pygments` fail\n"
        "from gdb_qznusnih.sinks import colour\n"
        "assert not colour.terminal_painter(None).colours\n"
        "assert not colour.terminal_painter('monokai').colours\n"
        "painter, css = colour.html_painter(None)\n"
        "assert (painter.colours, css, painter.insn('a<b')) == (False, '', 'a&lt;b')\n"
        "colour.check_style(None)\n"
        "try:\n"
        "    colour.check_style('monokai')\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "--style monokai needs pygments, which gdb's Python cannot import; "
        "install python3-pygments\n"
    )


def test_with_pygments_an_unknown_style_lists_the_styles():
    with pytest.raises(ValueError, match=r"^unknown style 'nosuch'; valid names .*monokai"):
        Colorizer("nosuch")
    from pygments.formatters import HtmlFormatter

    assert html_painter("monokai")[1] == HtmlFormatter(style="monokai").get_style_defs(".hl")
    assert html_painter(None)[1] == HtmlFormatter(style="default").get_style_defs(".hl")
