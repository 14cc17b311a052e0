"""TrapClassifier: which instruction a trap pc stands for when it is not simply the one ending
there (a rep op at pc, a call that led to pc, a ret or jmp that went there), and records
of a branch whose pc is unknown in every format."""

from __future__ import annotations

import json
import random

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify.trap import (
    BRANCH,
    GIVE_UP_MISSES,
    RememberingClassifier,
    TrapAccess,
    TrapClassifier,
    decode_trap,
)
from gdb_qznusnih.classify.x86 import READ, WRITE, covers, parse_instruction
from gdb_qznusnih.sinks.formats import BlockRenderer, JsonLine, LogDecoder, to_json
from tests.records import make_record

WATCH = 0x404050  # the watched bytes (a function pointer, a return slot, a buffer byte)
SP = 0x7FFFFFFFE000
CALLEE = 0x401196  # a function's first instruction
RETURN = 0x40126B  # a return address: the call before it is 5 bytes


def registers(**values):
    base = {"rsp": SP, "rip": CALLEE, "eflags": 0}
    base.update(values)
    return base.__getitem__


def classifier(before=None, length=8):
    """A classifier whose instruction_before() knows the instructions in `before` by end."""
    known = before or {}
    return TrapClassifier(WATCH, length, instruction_before=known.get)


def at_callee(before_text=None, at_entry=True):
    """The trap at CALLEE; the instruction ending there is the previous function's."""
    before = (CALLEE - 1, before_text) if before_text is not None else None
    return decode_trap(CALLEE, "push   %rbp", before, at_entry)


def test_load_right_before_a_rep_stos_is_the_load():
    pc = 0x401354
    decoded = decode_trap(pc, "rep stos %al,%es:(%rdi)", (pc - 4, "movzbl -0x1(%rdi),%eax"))
    regs = registers(rip=pc, rdi=WATCH + 1, rcx=4)
    found = classifier(length=1).classify(pc, decoded, regs)
    assert found == TrapAccess(pc - 4, "movzbl -0x1(%rdi),%eax", [READ], "insn")


def test_rep_stos_past_the_byte_still_takes_the_access():
    pc = 0x401354
    decoded = decode_trap(pc, "rep stos %al,%es:(%rdi)", (pc - 4, "movzbl -0x1(%rdi),%eax"))
    regs = registers(rip=pc, rdi=WATCH + 3, rcx=1)  # the movzbl read WATCH + 2
    found = classifier(length=1).classify(pc, decoded, regs)
    assert found == TrapAccess(pc, "rep stos %al,%es:(%rdi)", [WRITE], "insn")


def test_call_through_the_watched_pointer_is_found_by_its_return_address():
    call = {RETURN: (RETURN - 2, "call   *(%rax)")}
    found = classifier(call).classify(
        CALLEE, at_callee("ret"), registers(rax=WATCH), stack_top=lambda: RETURN
    )
    assert found == TrapAccess(RETURN - 2, "call *(%rax)", [READ], "insn", RETURN)


def test_rip_relative_and_displaced_calls_read_the_pointer():
    texts = {
        "call   *0x2de5(%rip)        # 0x404050 <handler>": registers(),
        "call   *0x10(%rbx)": registers(rbx=WATCH - 0x10),
    }
    for text, regs in texts.items():
        start = RETURN - 6 if "rip" in text else RETURN - 3
        call = {RETURN: (start, text)}
        found = classifier(call).classify(CALLEE, at_callee("ret"), regs, lambda: RETURN)
        assert found == TrapAccess(start, " ".join(text.split()), [READ], "insn", RETURN), text


def test_plt_stub_jump_through_the_watched_got_slot():
    stub = 0x4010A0
    call = {RETURN: (RETURN - 5, f"call   {stub:#x} <getppid@plt>")}
    code = {
        stub: "endbr64",
        stub + 4: f"bnd jmp *0x2f92(%rip)        # {WATCH:#x} <getppid@got.plt>",
    }
    found = TrapClassifier(WATCH, 8, instruction_before=call.get, instruction_at=code.get).classify(
        CALLEE, at_callee("ret"), registers(), lambda: RETURN
    )
    jump = f"bnd jmp *0x2f92(%rip) # {WATCH:#x} <getppid@got.plt>"
    assert found == TrapAccess(stub + 4, jump, [READ], "insn")
    code[stub + 4] = code[stub + 4].replace(f"{WATCH:#x}", f"{WATCH + 8:#x}")  # another slot
    found = TrapClassifier(WATCH, 8, instruction_before=call.get, instruction_at=code.get).classify(
        CALLEE, at_callee("ret"), registers(), lambda: RETURN
    )
    assert found == TrapAccess(None, None, [READ], BRANCH)


def test_call_pushing_into_the_watched_slot_is_a_write_by_the_call():
    call = {RETURN: (RETURN - 5, "call   0x401196 <callee>")}
    regs = registers(rsp=WATCH)  # the slot it pushed
    found = classifier(call).classify(CALLEE, at_callee("nop"), regs, lambda: RETURN)
    assert found == TrapAccess(RETURN - 5, "call 0x401196 <callee>", [WRITE], "insn", RETURN)


def test_a_return_address_that_reads_elsewhere_is_not_the_access():
    call = {RETURN: (RETURN - 2, "call   *(%rax)")}
    regs = registers(rax=WATCH + 0x100)
    found = classifier(call).classify(CALLEE, at_callee("ret"), regs, lambda: RETURN)
    assert found == TrapAccess(None, None, [READ], BRANCH)


def test_ret_popping_the_watched_slot_is_a_branch_read_without_a_pc():
    decoded = decode_trap(RETURN, "cmp    $0x1,%rax", (RETURN - 5, "call   0x401070 <read@plt>"))
    regs = registers(rsp=WATCH + 8, rip=RETURN)
    found = classifier().classify(RETURN, decoded, regs, lambda: 0)
    assert found == TrapAccess(None, None, [READ], BRANCH)


def test_jmp_through_the_pointer_is_a_branch_read_without_a_pc():
    jumped_from = {0x401235: (0x401233, "jmp    *(%rax)")}  # what the stack top names
    for decoded in (at_callee("ret"), at_callee(None)):
        found = classifier(jumped_from).classify(
            CALLEE, decoded, registers(rax=WATCH), lambda: 0x401235
        )
        assert found == TrapAccess(None, None, [READ], BRANCH)


def test_function_entry_never_takes_the_previous_functions_access():
    # The instruction before the entry reads the watched pointer, but no code falls through.
    decoded = at_callee("mov    0x2de5(%rip),%rax")
    found = classifier().classify(CALLEE, decoded, registers(rip=CALLEE), lambda: None)
    assert found == TrapAccess(None, None, [READ], BRANCH)
    inside = at_callee("mov    0x2de5(%rip),%rax", at_entry=False)
    regs = registers(rip=WATCH - 0x2DE5)
    assert classifier().classify(CALLEE, inside, regs).insn_pc == CALLEE - 1


def test_nothing_decoded_leaves_the_fallback_to_the_engine():
    decoded = decode_trap(0x401500, None, None)
    assert classifier().classify(0x401500, decoded, registers(), lambda: None) is None


def test_an_instruction_that_moved_its_own_address_register_keeps_the_access():
    decoded = decode_trap(0x401504, None, (0x401500, "mov    (%rax),%rax"))
    found = classifier().classify(0x401504, decoded, registers(rax=1), lambda: None)
    assert found == TrapAccess(0x401500, "mov (%rax),%rax", [READ], "insn")


def test_an_answer_from_the_pc_alone_is_cached_per_pc_and_one_from_the_registers_is_not():
    pc = 0x4011B7
    store = decode_trap(pc, "nop", (pc - 6, "mov    %al,0x2e97(%rip)        # 0x40404e <b>"))
    reads: list[str] = []

    def traced(**values):
        read = registers(rip=pc, **values)
        return lambda name: reads.append(name) or read(name)

    watch = TrapClassifier(0x40404E, 1)
    expected = TrapAccess(pc - 6, "mov %al,0x2e97(%rip) # 0x40404e <b>", [WRITE], "insn")
    assert watch.classify(pc, store, traced()) == expected
    assert reads == ["rip"]  # the address is the pc's: the same at every hit of it
    assert watch.classify(pc, store, traced()) == expected
    assert reads == ["rip"]
    # -0x1(%rdi): where it stored depends on rdi, so each hit reads it again
    load = decode_trap(pc, "nop", (pc - 4, "movzbl -0x1(%rdi),%eax"))
    on_rdi = TrapClassifier(0x40404E, 1)
    hit = TrapAccess(pc - 4, "movzbl -0x1(%rdi),%eax", [READ], "insn")
    assert on_rdi.classify(pc, load, traced(rdi=0x40404F)) == hit
    elsewhere = on_rdi.classify(pc, load, traced(rdi=0x50404F))  # it read another byte
    assert elsewhere == TrapAccess(None, None, [READ], BRANCH)
    assert reads == ["rip", "rdi", "rdi"]


def test_covers():
    def cover(text, length=1, **regs):
        return covers(parse_instruction(text), WATCH, length, registers(**regs))

    assert cover("movzbl -0x1(%rdi),%eax", rdi=WATCH + 1) is True
    assert cover("movzbl -0x1(%rdi),%eax", rdi=WATCH + 2) is False
    assert cover("mov    %eax,(%rdx)", rdx=WATCH - 3) is True  # 4 bytes from WATCH - 3
    assert cover("mov    %eax,(%rdx)", rdx=WATCH - 4) is False
    assert cover("mov    (%rdx),%rdx", rdx=WATCH) is None  # rdx is now the loaded value
    assert cover("movdqu (%rdx),%xmm0", rdx=WATCH - 8) is None  # size not in the text
    assert cover("clflush (%rax)", rax=WATCH) is True
    assert cover("clflush (%rax)", rax=WATCH - 1) is False  # one byte, measured
    assert cover("clzero", rax=(WATCH & ~63) + 60) is True
    assert cover("clzero", rax=(WATCH & ~63) + 64) is False
    assert cover("push   %rbx", length=8, rsp=WATCH) is True
    assert cover("ret", length=8, rsp=WATCH + 8) is True
    assert cover("call   0x401196 <f>", length=8, rsp=WATCH + 8) is False  # came back to pc
    assert cover("rep stos %al,%es:(%rdi)", rdi=WATCH + 1) is None


def branch_record():
    return make_record(kind="read", pc=None, insn=None, kind_from=BRANCH)


def test_a_branch_record_has_pc_null_in_json_and_reads_back():
    record = branch_record()
    line = JsonLine().encode(record)
    doc = json.loads(line)
    assert doc == to_json(record)
    assert doc["pc"] is None and doc["insn"] is None and doc["kind_from"] == "branch"
    decoded = LogDecoder().decode(line)
    assert decoded.pc is None and decoded.kind_from == BRANCH and to_json(decoded) == doc


def test_a_branch_record_says_so_in_its_text_block():
    text = BlockRenderer().render(branch_record())
    head = text.splitlines()[0]
    assert head.endswith("(by a branch at an unknown pc: #0 is where it went)"), text


# -- RememberingClassifier: the same answers, asked of the classifier only for new reads

CALLS = {RETURN: (RETURN - 2, "call   *(%rax)"), RETURN + 0x10: (RETURN + 0xB, "call   *%rdx")}
TRAPS = [  # (pc, decoded) of every kind: an access by the instruction before, a rep op, a
    # branch (call, ret, jmp), a function entry, nothing decoded
    (0x401354, decode_trap(
        0x401354, "rep stos %al,%es:(%rdi)", (0x401350, "movzbl -0x1(%rdi),%eax")
    )),
    (0x401504, decode_trap(0x401504, None, (0x401500, "mov    (%rax),%rax"))),
    (0x401604, decode_trap(0x401604, "nop", (0x401600, "mov    %al,0x8(%rbx)"))),
    (0x401704, decode_trap(0x401704, "nop", (0x401700, "mov    0x2de5(%rip),%rax"))),
    (CALLEE, at_callee("ret")),
    (CALLEE, at_callee(None)),
    (RETURN, decode_trap(RETURN, "cmp    $0x1,%rax", (RETURN - 5, "call   0x401070 <read@plt>"))),
    (0x401800, decode_trap(0x401800, None, None)),
]  # fmt: skip


def random_state(chance: random.Random):
    """Registers drawn from a few values each, so states repeat, some registers missing."""
    regs = {
        "rax": chance.choice([WATCH, WATCH + 0x100, 1]),
        "rbx": chance.choice([WATCH - 8, WATCH]),
        "rdi": chance.choice([WATCH + 1, WATCH + 3, WATCH + 0x40]),
        "rcx": chance.choice([0, 4]),
        "rsp": chance.choice([SP, WATCH, WATCH + 8]),
        "rip": chance.choice([CALLEE, WATCH - 0x2DE5 - 4]),
        "eflags": chance.choice([0, 1 << 10]),
    }
    for name in chance.sample(sorted(regs), chance.randrange(2)):
        del regs[name]
    top = chance.choice([RETURN, RETURN + 0x10, 0, None])
    return regs.__getitem__, (lambda: top)


def test_remembered_answers_are_the_classifiers_own_whatever_the_order():
    chance = random.Random(11)
    plain = TrapClassifier(WATCH, 8, instruction_before=CALLS.get)
    remembering = RememberingClassifier(
        TrapClassifier(WATCH, 8, instruction_before=CALLS.get), CacheRegistry()
    )
    for _ in range(3000):
        pc, decoded = chance.choice(TRAPS)
        read, stack_top = random_state(chance)
        expected = plain.classify(pc, decoded, read, stack_top)
        assert remembering.classify(pc, decoded, read, stack_top) == expected


class CountingClassifier(TrapClassifier):
    calls = 0

    def classify(self, *args):
        self.calls += 1
        return super().classify(*args)


def test_a_trap_whose_reads_repeat_is_answered_without_the_classifier_until_a_clear():
    caches = CacheRegistry()
    counting = CountingClassifier(WATCH, 8)
    remembering = RememberingClassifier(counting, caches)
    pc, decoded = TRAPS[2]  # mov %al,0x8(%rbx): it reads rbx
    store = TrapAccess(0x401600, "mov %al,0x8(%rbx)", [WRITE], "insn")
    elsewhere = TrapAccess(None, None, [READ], BRANCH)  # it stored elsewhere: a branch came
    for rbx, expected in ((WATCH - 8, store), (WATCH - 8, store), (WATCH, elsewhere),
                          (WATCH - 8, store), (WATCH, elsewhere)):  # fmt: skip
        assert remembering.classify(pc, decoded, registers(rbx=rbx), lambda: None) == expected
    assert counting.calls == 2  # once for each value of rbx
    caches.clear()
    remembering.classify(pc, decoded, registers(rbx=WATCH - 8), lambda: None)
    assert counting.calls == 3


def test_a_trap_whose_reads_keep_changing_is_given_up():
    counting = CountingClassifier(WATCH, 1)
    remembering = RememberingClassifier(counting, CacheRegistry())
    pc, decoded = TRAPS[2]
    for rbx in range(WATCH - 8 - GIVE_UP_MISSES - 10, WATCH - 8 + 1):
        found = remembering.classify(pc, decoded, registers(rbx=rbx), lambda: None)
        assert (found.insn_pc == 0x401600) == (rbx == WATCH - 8)
    assert counting.calls == GIVE_UP_MISSES + 11
    remembering.classify(pc, decoded, registers(rbx=WATCH - 8), lambda: None)
    assert counting.calls == GIVE_UP_MISSES + 12  # given up: asked every time
