"""Arming watches: the registry, target checks and debug registers, the batch run loop.

Needs gdb."""
