"""`qznusnih report` and `qzn-report`: a log read back into counts, text, JSON and HTML.

Pure: no gdb."""
