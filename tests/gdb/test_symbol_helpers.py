"""arm/target's block and line helpers, asked of a real gdb about a real program."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import C_DIR, gdb_base_command, quiet_env

pytestmark = pytest.mark.gdb

# Run in gdb with the program loaded (not started): what each helper says about some pcs.
SCRIPT = """
import json
import gdb
from gdb_qznusnih.arm import target

def pc_of(line):
    return gdb.decode_line(f"symbols.c:{line}")[1][0].pc

def name(block):
    function = block.function if block is not None else None
    return function.name if function is not None else None

answers = {}
for label, line in (("lexical", LEXICAL), ("inlined", INLINED)):
    pc = pc_of(line)
    innermost = gdb.current_progspace().block_for_pc(pc)
    answers[label] = {
        "innermost": name(innermost),
        "enclosing": name(target.enclosing_function(innermost)),
        "function_block": name(target.function_block(pc)),
        "source": target.source_location(gdb.find_pc_line(pc)),
    }
answers["no_block"] = name(target.enclosing_function(None))
answers["no_line"] = target.source_location(gdb.find_pc_line(0))
print("ANSWERS", json.dumps(answers))
"""


def _line_of(text: str) -> int:
    lines = (C_DIR / "symbols.c").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_blocks_walk_out_to_their_function_and_sals_give_file_and_line(build_c, tmp_path):
    lexical, inlined = _line_of("int fd = open("), _line_of("    watched = v;")
    script = tmp_path / "ask.py"
    script.write_text(f"LEXICAL = {lexical}\nINLINED = {inlined}\n" + SCRIPT)
    program = build_c("symbols")
    cmd = gdb_base_command() + ["-x", str(script), str(program)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=60)
    line = next((x for x in result.stdout.splitlines() if x.startswith("ANSWERS ")), None)
    assert line is not None, result.stdout + result.stderr
    answers = json.loads(line.split(" ", 1)[1])
    source = str(C_DIR / "symbols.c")
    assert answers == {
        # `int fd` makes a lexical block, which has no function: the walk goes out to main.
        "lexical": {
            "innermost": None,
            "enclosing": "main",
            "function_block": "main",
            "source": [source, lexical],
        },
        # An inlined function's block is a function's: the walk stops there.
        "inlined": {
            "innermost": "store_inline",
            "enclosing": "store_inline",
            "function_block": "store_inline",
            "source": [source, inlined],
        },
        "no_block": None,
        "no_line": [None, None],
    }
