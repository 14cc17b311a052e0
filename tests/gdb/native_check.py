"""Run inside gdb by test_native.py: on every hit of an access watchpoint, compare
what native.state_for() reads (ptrace, /proc/PID/mem) with what gdb reads."""

import gdb

from gdb_qznusnih.arm import target
from gdb_qznusnih.hit import native

word = target.word_size()
names = ["rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8d", "eflags"]
if word == 4:
    names = ["eip", "esp", "ebp", "eax", "ebx", "ecx", "edx", "esi", "edi", "eflags"]
counts = {"hits": 0, "mismatches": 0}


class Check(gdb.Breakpoint):
    def stop(self):
        fast = STATE.snapshot(target.current_thread_ids()[1])
        slow = native.GdbState(word)
        counts["hits"] += 1
        for name in names:
            if fast.reg(name) != slow.reg(name):
                counts["mismatches"] += 1
                print(f"MISMATCH {name} {fast.reg(name):#x} {slow.reg(name):#x}")
        sp = slow.reg(names[1])
        if fast.read(sp, 64) != slow.read(sp, 64):
            counts["mismatches"] += 1
            print("MISMATCH stack")
        return False


gdb.execute("tbreak ready")
gdb.execute("run")
STATE = native.state_for(gdb.selected_inferior(), word)
print("STATE", type(STATE).__name__)
Check("the_data", gdb.BP_WATCHPOINT, gdb.WP_ACCESS, internal=True)
gdb.execute("continue")
print("RESULT", counts["hits"], counts["mismatches"])
