"""Loader for gdb: `source /path/to/gdb_qznusnih/loader.py` (e.g. from ~/.gdbinit).

It puts the directory holding the package on gdb's sys.path and registers the
`qzn-*` commands.  Importing the package modules has no side effects; this
file is the one place that registers anything.
"""

import os
import sys

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, _PACKAGE_PARENT)

from gdb_qznusnih.commands import register_commands  # noqa: E402

register_commands()
