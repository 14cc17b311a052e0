"""`python -m gdb_qznusnih`: the same as the `qznusnih` launcher."""

import sys

from gdb_qznusnih.launcher.cli import main

sys.exit(main())
