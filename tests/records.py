"""Helpers shared by the tests that build records and read logs."""

from __future__ import annotations

from gdb_qznusnih.sinks.render import BlockRenderer


def plain_block(record, show_args: bool = False) -> str:
    """One record as a plain text block, rendered afresh (no cache kept between calls)."""
    return BlockRenderer(show_args=show_args).render(record)
