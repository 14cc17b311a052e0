"""gdb-qznusnih: log every read and write of a watched byte, with backtraces."""

__version__ = "0.1.0"
