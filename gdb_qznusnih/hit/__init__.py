"""One hit, on gdb's thread: registers and memory, the instruction, backtraces, the kernel view.

Needs gdb."""
