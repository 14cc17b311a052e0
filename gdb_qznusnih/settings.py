"""`set qzn ...` / `show qzn ...`: defaults for qzn-watch that persist.  Needs gdb."""

from __future__ import annotations

import gdb

from gdb_qznusnih.options import COLOR_CHOICES, DEFAULT_BT_DEPTH, ENGINE_CHOICES, one_line
from gdb_qznusnih.record.condition import compile_condition
from gdb_qznusnih.sinks.colour import check_style


class _Setting(gdb.Parameter):
    """One `set qzn NAME`; `check(value)` raises ValueError to refuse a value at once."""

    def __init__(self, name: str, kind, what: str, doc: str, *extra, check=None) -> None:
        self.short_name = name
        self.quoted = kind == gdb.PARAM_STRING
        self.what = what  # "The default colour mode", completes "... is VALUE."
        self.__doc__ = doc
        self.set_doc = f"Set {what[0].lower()}{what[1:]}."
        self.show_doc = f"Show {what[0].lower()}{what[1:]}."
        self._check = check
        super().__init__(f"qzn {name}", gdb.COMMAND_DATA, kind, *extra)
        self._accepted = self.value

    def get_set_string(self) -> str:
        if self._check is not None:
            try:
                self._check(self.value)
            except ValueError as error:
                # gdb has stored the new value already: put the last good one back.
                self.value = self._accepted
                raise gdb.GdbError(one_line(error)) from None
        self._accepted = self.value
        return ""

    def get_show_string(self, value: str) -> str:
        return f'{self.what} is "{value}".' if self.quoted else f"{self.what} is {value}."


class _SetPrefix(gdb.Command):
    """Settings of the qzn-watch command: the defaults its options start from.

    Usage: set qzn NAME VALUE

    `show qzn` lists every setting with its value."""

    def __init__(self) -> None:
        super().__init__("set qzn", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        gdb.execute("help set qzn", to_string=False)


class _ShowPrefix(gdb.Command):
    """Show the qzn-watch settings: every one with its value.

    Usage: show qzn [NAME]"""

    def __init__(self, settings: Settings) -> None:
        super().__init__("show qzn", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)
        self.settings = settings

    def invoke(self, argument: str, from_tty: bool) -> None:
        for setting in self.settings.all:
            shown = setting.get_show_string(_shown_value(setting.value))
            gdb.write(f"qzn {setting.short_name}:  {shown}\n")


def _shown_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None else str(value)


def _check_style(name: str) -> None:
    check_style(name or None)


class Settings:
    """The qzn settings; `watch_defaults()` feeds qzn-watch's option parser."""

    def __init__(self) -> None:
        _SetPrefix()
        _ShowPrefix(self)
        self.args = _Setting(
            "args",
            gdb.PARAM_BOOLEAN,
            "The default for --args, function arguments in backtraces",
            "Whether qzn-watch shows function arguments in backtraces (--args); slower.",
        )
        self.bt_depth = _Setting(
            "bt-depth",
            gdb.PARAM_ZUINTEGER,
            "The default number of frames per backtrace",
            f"Frames per backtrace that qzn-watch logs (--bt-depth); 0 means {DEFAULT_BT_DEPTH}.",
        )
        self.bt_depth.value = DEFAULT_BT_DEPTH
        self.color = _Setting(
            "color",
            gdb.PARAM_ENUM,
            "The default colour mode",
            "When qzn-watch colours its terminal stream (--color): auto (on a terminal, "
            "unless NO_COLOR is set), always or never.",
            list(COLOR_CHOICES),
        )
        self.color.value = "auto"
        self.engine = _Setting(
            "engine",
            gdb.PARAM_ENUM,
            "The default engine",
            "Which engine qzn-watch watches with (--engine): auto (the default: perf for a "
            "native process where perf events are permitted, else gdb), gdb (gdb's "
            "watchpoints) or perf (perf_event_open, the target never stopped).",
            list(ENGINE_CHOICES),
        )
        self.engine.value = "auto"
        self.log = _Setting(
            "log",
            gdb.PARAM_STRING,
            "The default log file prefix",
            "The prefix of the files qzn-watch writes (--log): PREFIX.jsonl, PREFIX.reads.log, "
            "PREFIX.writes.log, PREFIX.html.  Empty: the terminal only.",
        )
        self.style = _Setting(
            "style",
            gdb.PARAM_STRING,
            "The default pygments style for colours",
            "The pygments style qzn-watch colours with (--style); empty: 16 terminal colours "
            "that read on dark and light backgrounds.",
            check=_check_style,
        )
        self.if_cond = _Setting(
            "if",
            gdb.PARAM_STRING,
            "The default condition for logging an access",
            "qzn-watch logs only the accesses where this COND holds (--if); empty: all.",
            check=_check_condition,
        )
        self.stop_if = _Setting(
            "stop-if",
            gdb.PARAM_STRING,
            "The default condition for stopping at an access",
            "qzn-watch stops the program at the first access where this COND holds "
            "(--stop-if); empty: never.",
            check=_check_condition,
        )
        self.all = (
            self.args, self.bt_depth, self.color, self.engine, self.if_cond, self.log,
            self.stop_if, self.style,
        )  # fmt: skip

    def watch_defaults(self) -> dict:
        return {
            "color": self.color.value,
            "bt_depth": self.bt_depth.value or DEFAULT_BT_DEPTH,
            "style": self.style.value or None,
            "args": bool(self.args.value),
            "log": self.log.value or None,
            "if_cond": self.if_cond.value or None,
            "stop_if": self.stop_if.value or None,
            "engine": self.engine.value,
        }


def _check_condition(text: str | None) -> None:
    if text:
        compile_condition(text)  # ConditionError is a ValueError: one line, the column
