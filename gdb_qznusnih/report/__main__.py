"""`python -m gdb_qznusnih.report LOG.jsonl`: the same as `qznusnih report`."""

import sys

from gdb_qznusnih.report.cli import main

sys.exit(main(sys.argv[1:]))
