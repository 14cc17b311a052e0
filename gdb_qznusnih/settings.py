"""`set qzn ...` / `show qzn ...`: defaults for qzn-watch that persist.  Needs gdb."""

from __future__ import annotations

import gdb

from .options import COLOR_CHOICES, DEFAULT_BT_DEPTH


class _Prefix(gdb.Command):
    def __init__(self, name: str, doc: str) -> None:
        self.__doc__ = doc
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class _Setting(gdb.Parameter):
    """Base: `show` prints "NAME is VALUE."."""

    def get_show_string(self, value: str) -> str:
        return f"qzn {self.short_name} is {value}."


def _setting(name: str, kind, doc: str, *extra):
    """Create `set qzn NAME` with `doc` as both set and show help."""

    class Setting(_Setting):
        __doc__ = doc
        set_doc = f"Set the default {doc[0].lower()}{doc[1:]}"
        show_doc = f"Show the default {doc[0].lower()}{doc[1:]}"

        def __init__(self) -> None:
            self.short_name = name
            super().__init__(f"qzn {name}", gdb.COMMAND_DATA, kind, *extra)

    return Setting()


class Settings:
    """The qzn settings; `watch_defaults()` feeds qzn-watch's option parser."""

    def __init__(self) -> None:
        _Prefix("set qzn", "Settings of the qzn-watch commands.")
        _Prefix("show qzn", "Show the settings of the qzn-watch commands.")
        self.color = _setting(
            "color", gdb.PARAM_ENUM, "Colour mode: auto, always or never.", list(COLOR_CHOICES)
        )
        self.color.value = "auto"
        self.bt_depth = _setting("bt-depth", gdb.PARAM_ZUINTEGER, "Frames per backtrace.")
        self.bt_depth.value = DEFAULT_BT_DEPTH
        self.style = _setting("style", gdb.PARAM_STRING, "Pygments style for colours.")
        self.args = _setting("args", gdb.PARAM_BOOLEAN, "Show function arguments in backtraces.")
        self.log = _setting("log", gdb.PARAM_STRING, "Log file prefix (empty: no files).")

    def watch_defaults(self) -> dict:
        return {
            "color": self.color.value,
            "bt_depth": self.bt_depth.value or DEFAULT_BT_DEPTH,
            "style": self.style.value or None,
            "args": bool(self.args.value),
            "log": self.log.value or None,
        }
