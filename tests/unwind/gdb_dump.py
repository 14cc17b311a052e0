"""Run inside `gdb -batch` on tests/c/unwind_chain.c: stop at each planned place and dump what
a perf sample would hold (registers, the stack from $rsp, /proc/PID/maps, the vdso) with gdb's
own frame pcs, the ground truth.  `dump_prefix` is set with -ex before this file runs.

Stops, in the order the program reaches them:
  plt     qsort's lazy-binding PLT entry, after its push (the CFA is a DWARF expression)
  qsort   at_bottom, called back from inside libc's qsort
  memset  a write watchpoint on fill_target[1500], inside libc's vectorized memset
  signal  at_bottom, called by the SIGUSR1 handler (through glibc's signal trampoline)
"""

import json

import gdb

STACK_LIMIT = 64 * 1024
REGISTERS = "rax rdx rcx rbx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip".split()


def mapping_end(maps_text, address):
    for line in maps_text.splitlines():
        start, end = (int(part, 16) for part in line.split()[0].split("-"))
        if start <= address < end:
            return end
    raise gdb.GdbError(f"{address:#x} is not mapped")


def frame_pcs():
    frames, frame = [], gdb.newest_frame()
    while frame is not None:
        function = frame.function()
        frames.append(
            {
                "pc": frame.pc(),
                "name": frame.name() or (function.name if function else "?"),
                "sigtramp": frame.type() == gdb.SIGTRAMP_FRAME,
                # gdb's frames that are not on the stack: inlined calls (they share the real
                # frame's pc) and tail calls (rebuilt from DWARF call-site information)
                "virtual": frame.type() in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME),
            }
        )
        frame = frame.older()
    return frames


def dump(stop):
    inferior = gdb.selected_inferior()
    frame = gdb.newest_frame()
    registers = {name: int(frame.read_register(name)) & (2**64 - 1) for name in REGISTERS}
    with open(f"/proc/{inferior.pid}/maps") as maps:
        maps_text = maps.read()
    rsp = registers["rsp"]
    size = min(STACK_LIMIT, mapping_end(maps_text, rsp) - rsp)
    vdso = next(line for line in maps_text.splitlines() if line.endswith("[vdso]"))
    vdso_start, vdso_end = (int(part, 16) for part in vdso.split()[0].split("-"))
    record = {
        "registers": registers,
        "stack": bytes(inferior.read_memory(rsp, size)).hex(),
        "maps": maps_text,
        "vdso_start": vdso_start,
        "vdso": bytes(inferior.read_memory(vdso_start, vdso_end - vdso_start)).hex(),
        "frames": frame_pcs(),
    }
    with open(f"{dump_prefix}.{stop}.json", "w") as out:  # noqa: F821 (set by -ex)
        json.dump(record, out)


gdb.execute("handle SIGUSR1 nostop noprint pass")
gdb.execute("break main")
gdb.execute("run")
gdb.execute("delete")
gdb.execute("break *('qsort@plt' + 11)")
gdb.execute("continue")
dump("plt")
gdb.execute("delete")
gdb.execute("break at_bottom")
gdb.execute("continue")
dump("qsort")
gdb.execute("delete")
gdb.execute("watch -l fill_target[1500]")
gdb.execute("continue")
dump("memset")
gdb.execute("delete")
gdb.execute("break at_bottom")
gdb.execute("continue")
dump("signal")
gdb.execute("kill")
