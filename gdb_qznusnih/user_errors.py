"""Bad input gets one line: any error's text on one line, and argparse that raises it.  Pure.

gdb prints a multi-line message as several lines, and argparse prints its usage and exits;
both would break the project's rule of one line that says what to do.
"""

from __future__ import annotations

import argparse


def one_line(text: object) -> str:
    """`text` (an exception, or gdb's multi-line message) with each run of whitespace one space."""
    return " ".join(str(text).split())


def raising_parser(
    error_class: type[Exception], help_hint: str = "see '{prog} --help'", exit_raises: bool = False
) -> type[argparse.ArgumentParser]:
    """An ArgumentParser class whose errors raise `error_class` with one line.

    The line is argparse's message, then `help_hint` in brackets ({prog} is the parser's prog).
    With `exit_raises`, an exit (e.g. from an action) raises too, instead of SystemExit.
    """

    class RaisingParser(argparse.ArgumentParser):
        def error(self, message: str):
            raise error_class(f"{message} ({help_hint.format(prog=self.prog)})")

        def exit(self, status: int = 0, message: str | None = None):
            if not exit_raises:
                super().exit(status, message)
            raise error_class(message.strip() if message else f"{self.prog}: exit {status}")

    RaisingParser.__doc__ = f"argparse that raises {error_class.__name__} with one line."
    return RaisingParser
