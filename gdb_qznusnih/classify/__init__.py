"""What an access was: x86 access kinds from the instruction, Linux kernel layout.

Pure: no gdb."""
