"""Helpers shared by the tests that build records and read logs."""

from __future__ import annotations

import json
import re

from gdb_qznusnih.sinks.formats import BlockRenderer


def plain_block(record, show_args: bool = False) -> str:
    """One record as a plain text block, rendered afresh (no cache kept between calls)."""
    return BlockRenderer(show_args=show_args).render(record)


BLOCK_HEADER = re.compile(r"^\[\d+:(\d+)\] ", re.MULTILINE)


def block_seqs(text: str) -> list[int]:
    """The record numbers of the text blocks in `text` ("[WATCH:SEQ] KIND ..." headers; gdb's
    own bracketed lines such as "[Thread debugging ...]" are not blocks)."""
    return [int(seq) for seq in BLOCK_HEADER.findall(text)]


def read_jsonl(path) -> list[dict]:
    """Every line of a JSON Lines log, parsed."""
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]
