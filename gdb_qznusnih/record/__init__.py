"""The access record, its clock and the summary of a watch.

Pure: no gdb."""
