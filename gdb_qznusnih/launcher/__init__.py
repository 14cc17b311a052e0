"""The `qznusnih` launcher: checks input, runs gdb, cleans up after it.

Standard library only."""
