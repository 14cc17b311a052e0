"""Sourced into the attached gdb after the loader, for the symbolizer tests: logs, for each trap
pc the gdb engine decodes, what its InstructionLocator found before it and at it, so a test can
tell each record's trap pc.  It only observes: the engine runs unchanged."""

import json
import os

from gdb_qznusnih.hit import locate

_LOG = os.environ["QZN_TRUTH_LOG"]


def _logged(name):
    method = getattr(locate.InstructionLocator, name)

    def logged(self, pc):
        found = method(self, pc)
        with open(_LOG, "a") as log:
            log.write(json.dumps([name, pc, found]) + "\n")
        return found

    setattr(locate.InstructionLocator, name, logged)


_logged("before")
_logged("at")
