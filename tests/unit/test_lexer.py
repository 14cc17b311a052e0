"""The gdb backtrace lexer, on backtraces copied from real `gdb -batch -ex bt` runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments")

from pygments.lexer import RegexLexer  # noqa: E402
from pygments.token import Error  # noqa: E402

from gdb_qznusnih.sinks.lexer import backtrace_lexer, token_types  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TT = token_types()

# gdb 13.1, Debian 12, x86-64: a small C program (mix.c) that raises signals from a nested call
# and aborts inside qsort's comparator; stripped, without libc debug info, with a signal handler
# frame, and a C++ program with templates, lambdas and operators.
REAL_BT = """\
#0  __pthread_kill_implementation (threadid=<optimized out>, signo=signo@entry=10, no_tid=no_tid@entry=0) at ./nptl/pthread_kill.c:44
#1  0x00007ffff7e5bf4f in __pthread_kill_internal (signo=10, threadid=<optimized out>) at ./nptl/pthread_kill.c:78
#2  0x00007ffff7e0cfb2 in __GI_raise (sig=10) at ../sysdeps/posix/raise.c:26
#3  0x00005555555551d7 in round_once (i=3, name=0x7fffffffead2 "/tmp/bt/mix") at mix.c:9
#4  0x000055555555526a in main (argc=1, argv=0x7fffffffe808) at mix.c:15
#0  __pthread_kill_implementation (threadid=..., signo=..., no_tid=...) at ./nptl/pthread_kill.c:44
#3  0x00005555555551d7 in round_once (i=..., name=...) at mix.c:9
#0  __pthread_kill_implementation (...) at ./nptl/pthread_kill.c:44
#4  0x000055555555526a in main (...) at mix.c:15
#3  0x00007ffff7df7472 in __GI_abort () at ./stdlib/abort.c:79
#4  0x0000555555555225 in cmp (a=0x7fffffffe6d8, b=0x7fffffffe6dc) at mix.c:12
#5  0x00007ffff7e10bf4 in msort_with_tmp (p=p@entry=0x7fffffffe640, b=b@entry=0x7fffffffe6d8, n=n@entry=2) at ./stdlib/msort.c:64
#6  0x00007ffff7e109c1 in msort_with_tmp (n=2, b=0x7fffffffe6d8, p=0x7fffffffe640) at ./stdlib/msort.c:44
#7  msort_with_tmp (p=p@entry=0x7fffffffe640, b=b@entry=0x7fffffffe6d0, n=n@entry=4) at ./stdlib/msort.c:53
#10 0x00007ffff7e10d36 in msort_with_tmp (n=8, b=0x7fffffffe6c0, p=0x7fffffffe640) at ./stdlib/msort.c:44
#11 __GI___qsort_r (b=<optimized out>, n=<optimized out>, s=4, cmp=0x5555555551f5 <cmp>, arg=0x0) at ./stdlib/msort.c:296
#12 0x00005555555552cf in main (argc=1, argv=0x7fffffffe808) at mix.c:17
#3  0x00005555555551d7 in ?? ()
#5  0x00007ffff7df824a in __libc_start_call_main (main=main@entry=0x555555555237, argc=argc@entry=1, argv=argv@entry=0x7fffffffe808) at ../sysdeps/nptl/libc_start_call_main.h:58
#6  0x00007ffff7df8305 in __libc_start_main_impl (main=0x555555555237, argc=1, argv=0x7fffffffe808, init=<optimized out>, fini=<optimized out>, rtld_fini=<optimized out>, stack_end=0x7fffffffe7f8) at ../csu/libc-start.c:360
#7  0x00005555555550b1 in ?? ()
#0  0x00007ffff7e5beec in ?? () from /lib/x86_64-linux-gnu/libc.so.6
#1  0x00007ffff7e0cfb2 in raise () from /lib/x86_64-linux-gnu/libc.so.6
#2  0x0000555555555197 in handler (sig=10) at mix.c:6
#3  <signal handler called>
#4  0x00007ffff7e5beec in ?? () from /lib/x86_64-linux-gnu/libc.so.6
#6  0x00005555555551d7 in round_once (i=3, name=0x7fffffffead2 "/tmp/bt/mix") at mix.c:9
#2  0x0000555555555197 in handler (sig=10)
#0  main () at smash.c:2
Backtrace stopped: Cannot access memory at address 0x18
#3  0x000055555555588d in ns::Box<std::map<int, int, std::less<int>, std::allocator<std::pair<int const, int> > > >::poke (this=0x7fffffffe5f0, s="a(b)c", xs=std::vector of length 2, capacity 2 = {...}) at cpp.cc:5
#4  0x000055555555537c in ns::operator< (x=..., y=...) at cpp.cc:7
#5  0x0000555555555453 in operator() (__closure=0x7fffffffe6d0, k=3) at cpp.cc:8
#6  0x0000555555555494 in main () at cpp.cc:8
"""  # noqa: E501 (real gdb lines are long)

# What render.py prints: no args unless asked, i386 addresses are 8 digits.
OUR_BT = """\
#0  0x000055d0c3a08168 in round_once at mix.c:40
#1  0x000055d0c3a0826a in main (argc=1, argv=0x7ffd5c1e0a18) at mix.c:61
#2  0x00007f3a1c02824a in ??
#3  0x00007f3a1c028305 in __libc_start_main_impl at ../csu/libc-start.c
#0  0x565561d7 in round_once at mix.c:40
"""


def tokens(text: str) -> list[tuple]:
    return [(t, v) for t, v in backtrace_lexer().get_tokens(text) if v.strip()]


def of_type(text: str, ttype) -> list[str]:
    return [v for t, v in tokens(text) if t is ttype]


@pytest.mark.parametrize("text", [REAL_BT, OUR_BT])
def test_real_backtraces_lex_losslessly_without_error_tokens(text):
    toks = list(backtrace_lexer().get_tokens(text))
    assert "".join(v for _, v in toks) == text
    assert not [v for t, v in toks if t in Error]


@pytest.mark.parametrize("line", (REAL_BT + OUR_BT).splitlines())
def test_every_frame_line_has_a_frame_number_and_a_function_or_marker(line):
    if not line.startswith("#"):
        return
    kinds = {t for t, _ in tokens(line)}
    assert TT["frame_number"] in kinds
    assert TT["function"] in kinds or TT["meta"] in kinds


def test_frame_with_address_args_file_and_line():
    line = "#1  0x000055d0c3a0826a in main (argc=1, argv=0x7ffd5c1e0a18) at mix.c:61"
    assert tokens(line) == [
        (TT["frame_number"], "#1"),
        (TT["address"], "0x000055d0c3a0826a"),
        (TT["text"], " in "),
        (TT["function"], "main"),
        (TT["punct"], "("),
        (TT["arg_name"], "argc"),
        (TT["operator"], "="),
        (TT["arg_value"], "1"),
        (TT["punct"], ","),
        (TT["arg_name"], "argv"),
        (TT["operator"], "="),
        (TT["arg_value"], "0x7ffd5c1e0a18"),
        (TT["punct"], ")"),
        (TT["text"], " at "),
        (TT["file"], "mix.c"),
        (TT["punct"], ":"),
        (TT["line"], "61"),
    ]


def test_token_types_of_the_roles_are_distinct():
    roles = ["frame_number", "address", "function", "arg_name", "arg_value", "file", "line"]
    assert len({TT[r] for r in roles}) == len(roles)


def test_frame_without_args_as_we_print_it():
    assert tokens("#0  0x000055d0c3a08168 in round_once at mix.c:40") == [
        (TT["frame_number"], "#0"),
        (TT["address"], "0x000055d0c3a08168"),
        (TT["text"], " in "),
        (TT["function"], "round_once"),
        (TT["text"], " at "),
        (TT["file"], "mix.c"),
        (TT["punct"], ":"),
        (TT["line"], "40"),
    ]


def test_library_frame_and_unknown_function():
    line = "#0  0x00007ffff7e5beec in ?? () from /lib/x86_64-linux-gnu/libc.so.6"
    assert of_type(line, TT["meta"]) == ["??"]
    assert of_type(line, TT["file"]) == ["/lib/x86_64-linux-gnu/libc.so.6"]
    assert of_type(line, TT["text"]) == [" in ", " from "]
    assert of_type(line, TT["function"]) == []


def test_inline_frame_without_address():
    line = "#7  msort_with_tmp (p=p@entry=0x7fffffffe640, n=n@entry=4) at ./stdlib/msort.c:53"
    assert of_type(line, TT["address"]) == []
    assert of_type(line, TT["function"]) == ["msort_with_tmp"]
    assert of_type(line, TT["arg_name"]) == ["p", "n"]
    assert of_type(line, TT["arg_value"]) == ["p@entry=0x7fffffffe640", "n@entry=4"]
    assert of_type(line, TT["file"]) == ["./stdlib/msort.c"]
    assert of_type(line, TT["line"]) == ["53"]


def test_string_and_optimized_out_values():
    line = (
        '#3  0x00005555555551d7 in round_once (i=3, name=0x7fffffffead2 "/tmp/bt/mix") at mix.c:9'
    )
    assert of_type(line, TT["string"]) == ['"/tmp/bt/mix"']
    line = "#1  0x00007ffff7e5bf4f in f (signo=10, threadid=<optimized out>) at ./k.c:78"
    assert of_type(line, TT["value_meta"]) == ["<optimized out>"]
    assert of_type(line, TT["arg_name"]) == ["signo", "threadid"]


def test_cpp_names_and_values_with_commas_and_parens():
    line = REAL_BT.splitlines()[-4]
    assert of_type(line, TT["function"]) == [
        "ns::Box<std::map<int, int, std::less<int>, std::allocator<std::pair<int const, int> > >"
        " >::poke"
    ]
    assert of_type(line, TT["arg_name"]) == ["this", "s", "xs"]
    assert of_type(line, TT["string"]) == ['"a(b)c"']
    assert of_type(line, TT["arg_value"])[-1] == "std::vector of length 2, capacity 2 = {...}"
    assert of_type(line, TT["file"]) == ["cpp.cc"]
    assert of_type("#4  0x1 in ns::operator< (x=..., y=...) at cpp.cc:7", TT["function"]) == [
        "ns::operator<"
    ]
    assert of_type("#5  0x1 in operator() (k=3) at cpp.cc:8", TT["function"]) == ["operator()"]
    line = "#1  0x2 in std::function<void (int)>::operator() (this=0x3, a=1) at f.h:591"
    assert of_type(line, TT["function"]) == ["std::function<void (int)>::operator()"]
    assert of_type(line, TT["arg_name"]) == ["this", "a"]


def test_signal_handler_and_backtrace_stopped_lines():
    assert tokens("#3  <signal handler called>") == [
        (TT["frame_number"], "#3"),
        (TT["meta"], "<signal handler called>"),
    ]
    assert tokens("Backtrace stopped: Cannot access memory at address 0x18") == [
        (TT["meta"], "Backtrace stopped: Cannot access memory at address 0x18")
    ]


def test_other_text_is_plain_text():
    text = "    movb $0x1,(%rax)\nNo symbol table info available.\n"
    toks = list(backtrace_lexer().get_tokens(text))
    assert "".join(v for _, v in toks) == text
    assert {t for t, v in toks if v.strip()} == {TT["text"]}


def test_garbage_never_gives_error_tokens():
    text = '#1 0x in ( at :\n#2  "unterminated (a=\n#\n#3  f (a=1)) at x.c:1\n'
    toks = list(backtrace_lexer().get_tokens(text))
    assert "".join(v for _, v in toks) == text
    assert not [v for t, v in toks if t in Error]


def test_lexer_is_cached_a_regex_lexer_and_not_registered():
    assert backtrace_lexer() is backtrace_lexer()
    assert isinstance(backtrace_lexer(), RegexLexer)
    from pygments.lexers import find_lexer_class_by_name
    from pygments.util import ClassNotFound

    with pytest.raises(ClassNotFound):
        find_lexer_class_by_name("gdb-backtrace")


def test_importing_without_pygments_works_and_renders_plain():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pygments"] = None  # makes `import pygments` fail
        from gdb_qznusnih.sinks import colour
        from gdb_qznusnih.sinks import lexer
        from gdb_qznusnih.sinks import formats
        from gdb_qznusnih.record.access import Frame, Record
        try:
            lexer.backtrace_lexer()
        except ImportError:
            pass
        else:
            raise AssertionError("lexer without pygments")
        record = Record(1, "write", 0x10, 1, 0, 1, 2, 2, 0x401000, "movb $0x1,(%rax)",
                        0.0, (Frame(0, 0x401000, "main", "m.c", 3),))
        colorizer = colour.Colorizer()
        block = formats.BlockRenderer(colorizer).render(record)
        assert "#0  0x00401000 in main at m.c:3" in block, block
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
