"""Where records go: text blocks, colour, the terminal, the log files, the status line.

Pure: no gdb."""
