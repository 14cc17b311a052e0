"""classify: instruction texts exactly as gdb 13.1 prints them (AT&T), and what they do.

The texts were taken from `disassemble /r` and `gdb.Architecture.disassemble(pc)` on
tests/unit/data/insns64.S, insns32.S (gcc -c, gcc -m32 -c) and linked.c; column spacing and
"# 0x... <sym>" comments are gdb's own.
"""

from __future__ import annotations

import pytest

from gdb_qznusnih.classify.x86 import (
    READ,
    REP_REACH,
    WRITE,
    MemOperand,
    accesses,
    accesses_memory,
    classify_access,
    effective_address,
    immediate_value,
    kind_from_value,
    parse_instruction,
    parse_mem_operand,
    register_part,
    string_access_near,
)

R, W, RW = [READ], [WRITE], [READ, WRITE]
NONE = None

# (text, kinds) for x86-64.  Instructions with one data access: classify_access must decide
# them without reading a register.
SINGLE_64 = [
    ("movb   $0x1,(%rax)", W),  # a store is a write even when the value does not change
    ("mov    (%rax),%al", R),
    ("mov    0x0(%rip),%eax        # 0xb <insns64+11>", R),
    ("movl   $0x1,0x0(%rip)        # 0x15 <insns64+21>", W),
    ("movb   $0x1,0x2ee9(%rip)        # 0x555555558019 <counter>", W),
    ("movzbl 0x2ee2(%rip),%eax        # 0x555555558019 <counter>", R),
    ("lock addb $0x1,0x2eda(%rip)        # 0x555555558019 <counter>", RW),
    ("xchg   %dl,0x2ecf(%rip)        # 0x555555558019 <counter>", RW),
    ("mov    0x2ebf(%rip),%rcx        # 0x555555558010 <ptr>", R),
    ("mov    %al,(%rcx)", W),
    ("cmpb   $0x0,(%rdi)", R),
    ("testb  $0x1,(%rdi)", R),
    ("test   %al,(%rdi)", R),
    ("addb   $0x0,(%rax)", RW),
    ("incb   (%rdx)", RW),
    ("lock incb (%rdx)", RW),
    ("lock addl $0x1,0x0(%rip)        # 0x2d <insns64+45>", RW),
    ("xchg   %al,(%rdi)", RW),
    ("xchg   (%rdi),%al", RW),  # gdb normalises `xchg (%rdi),%al`, but accept both orders
    ("xchg   %rax,(%rdi)", RW),
    ("lock xadd %eax,(%rdi)", RW),
    ("xadd   %al,(%rdi)", RW),
    ("lock cmpxchg %cl,(%rdi)", RW),
    ("cmpxchg %rcx,(%rdi)", RW),
    ("lock cmpxchg %rcx,(%rdi)", RW),
    ("cmpxchg8b (%rdi)", RW),
    ("lock cmpxchg16b (%rdi)", RW),
    ("xacquire lock incb (%rdi)", RW),
    ("xrelease lock incb (%rdi)", RW),
    ("lock subq $0x1,(%rdi)", RW),
    ("bts    %eax,(%rdi)", RW),
    ("btsl   $0x3,(%rdi)", RW),
    ("bt     %eax,(%rdi)", R),
    ("btl    $0x3,(%rdi)", R),
    ("sete   (%rdi)", W),
    ("setne  0x10(%rsp)", W),
    ("cmove  (%rdi),%eax", R),
    ("cmovne 0x8(%rsp),%rax", R),
    ("mov    %rax,(%rdi)", W),
    ("mov    (%rdi),%rax", R),
    ("movq   %xmm0,(%rdi)", W),
    ("movq   (%rdi),%xmm0", R),
    ("movdqu %xmm0,(%rdi)", W),
    ("movdqu (%rdi),%xmm0", R),
    ("movaps %xmm1,0x10(%rsp)", W),
    ("movaps 0x10(%rsp),%xmm1", R),
    ("movups %xmm0,(%rdi)", W),
    ("movhps %xmm0,(%rdi)", W),
    ("movhps (%rdi),%xmm0", R),
    ("movlpd %xmm0,(%rdi)", W),
    ("movd   %xmm0,(%rdi)", W),
    ("movd   (%rdi),%xmm0", R),
    ("pcmpeqb (%rdi),%xmm0", R),
    ("pshufb (%rdi),%xmm0", R),
    ("vmovdqu %ymm0,(%rdi)", W),
    ("vmovdqu (%rdi),%ymm0", R),
    ("vmovups %xmm0,(%rdi)", W),
    ("vpcmpeqb (%rdi),%ymm1,%ymm0", R),
    ("vpcmpeqb (%rdi),%xmm1,%xmm0", R),
    ("vpcmpeqb (%rdi),%zmm1,%k1", R),
    ("vmovdqu64 %zmm0,(%rdi)", W),
    ("vmovdqu8 %zmm0,(%rdi){%k1}", W),
    ("vaddps (%rdi){1to16},%zmm1,%zmm2{%k1}{z}", R),
    ("vpbroadcastb (%rdi),%ymm0", R),
    ("vpmaskmovd %ymm0,%ymm1,(%rdi)", W),
    ("vmaskmovps %ymm0,%ymm1,(%rdi)", W),
    ("vpmaskmovd (%rdi),%ymm1,%ymm0", R),
    ("vpgatherdd %xmm2,(%rdi,%xmm1,4),%xmm0", R),
    ("vpscatterdd %zmm0,(%rdi,%zmm0,4){%k1}", W),
    ("vaddps (%rdi),%ymm1,%ymm0", R),
    ("vfmadd231ps (%rdi),%ymm1,%ymm0", R),
    ("cvtsi2sdl (%rdi),%xmm0", R),
    ("addsd  (%rdi),%xmm0", R),
    ("cmpeqsd (%rdi),%xmm0", R),
    ("ucomisd (%rdi),%xmm0", R),
    ("comiss (%rdi),%xmm0", R),
    ("ptest  (%rdi),%xmm0", R),
    ("movzbl (%rdi),%eax", R),
    ("movsbl (%rdi),%eax", R),
    ("movzbl 0x0(%rip),%eax        # 0xac <insns64+172>", R),
    ("movsbq (%rdi),%rax", R),
    ("movslq (%rdi),%rax", R),
    ("pextrb $0x0,%xmm0,(%rdi)", W),
    ("vextracti128 $0x1,%ymm0,(%rdi)", W),
    ("movntdq %xmm0,(%rdi)", W),
    ("movnti %eax,(%rdi)", W),
    ("movnti %rax,(%rdi)", W),
    ("vmovntdq %ymm0,(%rdi)", W),
    ("movntps %xmm0,(%rdi)", W),
    ("movntdqa (%rdi),%xmm0", R),
    ("movbe  (%rdi),%eax", R),
    ("movbe  %eax,(%rdi)", W),
    ("mov    %es,(%rdi)", W),
    ("mov    (%rdi),%es", R),
    ("negb   (%rdi)", RW),
    ("notb   (%rdi)", RW),
    ("shlb   (%rdi)", RW),
    ("shlb   $0x3,(%rdi)", RW),
    ("sarl   %cl,(%rdi)", RW),
    ("rolb   (%rdi)", RW),
    ("rclb   (%rdi)", RW),
    ("rcrb   $0x2,(%rdi)", RW),
    ("adc    %al,(%rdi)", RW),
    ("sbb    %al,(%rdi)", RW),
    ("and    %al,(%rdi)", RW),
    ("or     %al,(%rdi)", RW),
    ("xor    %al,(%rdi)", RW),
    ("or     (%rdi),%al", R),
    ("add    (%rdi),%al", R),
    ("sub    (%rdi),%al", R),
    ("andn   (%rdi),%eax,%ecx", R),
    ("adcx   (%rdi),%eax", R),
    ("shld   $0x3,%eax,(%rdi)", RW),
    ("shrd   %cl,%eax,(%rdi)", RW),
    ("decw   (%rdi)", RW),
    ("incl   0x0(%rip)        # 0x26e <insns64+622>", RW),
    ("incq   0x8(%rsp)", RW),
    ("imul   (%rdi),%eax", R),
    ("imul   $0x3,(%rdi),%eax", R),
    ("mulb   (%rdi)", R),
    ("divb   (%rdi)", R),
    ("idivl  (%rdi)", R),
    ("crc32b (%rdi),%eax", R),
    ("popcnt (%rdi),%eax", R),
    ("bsf    (%rdi),%eax", R),
    ("cmpw   $0x1,(%rdi,%rcx,2)", R),
    ("movb   $0x1,0x10(%rdi,%rcx,1)", W),
    ("movb   $0x1,-0x10(%rbp)", W),
    ("mov    %al,0x1234", W),
    ("movabs %al,0x1122334455667788", W),
    ("movabs 0x1122334455667788,%al", R),
    ("mov    0x10(,%rax,8),%rdx", R),
    # x87 and control/status words
    ("fldl   (%rdi)", R),
    ("flds   (%rdi)", R),
    ("fldt   (%rdi)", R),
    ("fstpl  (%rdi)", W),
    ("fstps  (%rdi)", W),
    ("fstpt  (%rdi)", W),
    ("fstl   (%rdi)", W),
    ("fistpl (%rdi)", W),
    ("fistpll (%rdi)", W),
    ("fisttpll (%rdi)", W),
    ("fisttps (%rdi)", W),
    ("fildl  (%rdi)", R),
    ("fadds  (%rdi)", R),
    ("fnstcw (%rdi)", W),
    ("fstcw  (%rdi)", W),
    ("fldcw  (%rdi)", R),
    ("fnstsw (%rdi)", W),
    ("fstsw  (%rdi)", W),
    ("fnstenv (%rdi)", W),
    ("fnsave (%rdi)", W),
    ("frstor (%rdi)", R),
    ("fldenv (%rdi)", R),
    ("stmxcsr (%rdi)", W),
    ("ldmxcsr (%rdi)", R),
    ("fxsave (%rdi)", W),
    ("fxrstor (%rdi)", R),
    ("xsave  (%rdi)", W),
    ("xrstor (%rdi)", R),
    ("sgdt   (%rdi)", W),
    ("lgdt   (%rdi)", R),
    ("str    (%rdi)", W),
    ("sldt   (%rdi)", W),
    ("verr   (%rdi)", R),
    ("vmptrld (%rdi)", R),
    # fs/gs-relative (TLS, stack protector)
    ("mov    %fs:0x28,%rax", R),
    ("sub    %fs:0x28,%rdx", R),
    ("xor    %fs:0x28,%rdx", R),
    ("mov    %rax,%fs:0x0", W),
    ("mov    %fs:(%rax),%al", R),
    ("mov    %gs:0x10,%rax", R),
    ("mov    %gs:0x28,%rax", R),
    # implicit stack accesses with one access only
    ("push   %rbp", W),
    ("pop    %rbp", R),
    ("push   $0x1", W),
    ("push   %fs", W),
    ("pop    %fs", R),
    ("pushf", W),
    ("popf", R),
    ("call   0xd9 <insns64+217>", W),
    ("addr32 call 0x16 <odd+22>", W),
    ("bnd call 0x1c <odd+28>", W),
    ("call   *%rax", W),
    ("notrack call *%rax", W),
    ("ret", R),
    ("ret    $0x10", R),
    ("bnd ret", R),
    ("repz ret", R),
    ("retw", R),
    ("lret", R),
    ("lret   $0x8", R),
    ("iretq", R),
    ("leave", R),
    ("enter  $0x10,$0x0", W),
    ("jmp    *0x8(%rax)", R),
    ("jmp    *0x2fe2(%rip)        # 0x4018 <puts@got.plt>", R),
    ("ljmp   *(%rdi)", R),
    # string instructions with one access
    ("stos   %al,%es:(%rdi)", W),
    ("rep stos %al,%es:(%rdi)", W),
    ("rep stos %rax,%es:(%rdi)", W),
    ("stos   %eax,%es:(%rdi)", W),
    ("rep stos %ax,%es:(%rdi)", W),
    ("rep stos %al,%es:(%edi)", W),
    ("lods   %ds:(%rsi),%al", R),
    ("rep lods %ds:(%rsi),%al", R),
    ("lods   %ds:(%rsi),%rax", R),
    ("rep lods %ds:(%rsi),%ax", R),
    ("scas   %es:(%rdi),%al", R),
    ("repnz scas %es:(%rdi),%al", R),
    ("repz scas %es:(%rdi),%al", R),
    ("scas   %es:(%rdi),%rax", R),
    ("insb   (%dx),%es:(%rdi)", W),
    ("rep insb (%dx),%es:(%rdi)", W),
    ("insl   (%dx),%es:(%rdi)", W),
    ("outsb  %ds:(%rsi),(%dx)", R),
    ("rep outsb %ds:(%rsi),(%dx)", R),
    ("xlat   %ds:(%rbx)", R),
    ("maskmovdqu %xmm1,%xmm0", W),
    # cache-line flushes trigger data breakpoints as reads (perf counts on this CPU);
    # clzero stores the 64-byte line %rax points into (gdb prints no operand)
    ("clflush (%rdi)", R),
    ("clflushopt (%rdi)", R),
    ("clwb   (%rdi)", R),
    ("clzero", W),
    # memory named but not accessed
    ("nopw   0x0(%rax,%rax,1)", NONE),
    ("nopw   (%rax,%rax,1)", NONE),
    ("nopl   (%rax)", NONE),
    ("nopl   0x0(%rax)", NONE),
    ("cs nopw (%rax,%rax,1)", NONE),
    ("cs nopw 0x0(%rax,%rax,1)", NONE),
    ("data16 cs nopw 0x0(%rax,%rax,1)", NONE),
    ("data16 data16 cs nopw 0x0(%rax,%rax,1)", NONE),
    ("lea    0x8(%rdi),%rax", NONE),
    ("lea    0x0(%rip),%rax        # 0x148 <insns64+328>", NONE),
    ("lea    0x0(,%rax,8),%rdx", NONE),
    ("lea    0x0,%rax", NONE),
    ("prefetcht0 (%rdi)", NONE),
    ("prefetcht1 (%rax)", NONE),
    ("prefetchnta (%rdi)", NONE),
    ("prefetchw (%rdi)", NONE),
    ("invlpg (%rdi)", NONE),
    ("bndmk  (%rdi),%bnd0", NONE),
    # no memory at all
    ("nop", NONE),
    ("xchg   %ax,%ax", NONE),
    ("rex.W nop", NONE),
    ("rex.WRXB xchg %rax,%r8", NONE),
    ("fs nop", NONE),
    ("pause", NONE),
    ("endbr64", NONE),
    ("syscall", NONE),
    ("hlt", NONE),
    ("int3", NONE),
    ("ud2", NONE),
    ("mov    $0x1,%rax", NONE),
    ("fadd   %st(1),%st", NONE),
    ("vaddps {rn-sae},%zmm0,%zmm1,%zmm2", NONE),
    ("jmp    *%rax", NONE),
    ("notrack jmp *%rax", NONE),
    ("bnd jmp *%rax", NONE),
    ("je,pn  0x24 <odd+36>", NONE),
    ("je,pt  0x27 <odd+39>", NONE),
    ("loop   0xe4 <odd+228>", NONE),
    ("jrcxz  0xe6 <odd+230>", NONE),
    ("xbegin 0x291 <insns64+657>", NONE),
    ("in     (%dx),%al", NONE),
    ("out    %al,(%dx)", NONE),
    ("rdtscp", NONE),
    ("vpmovmskb %xmm0,%eax", NONE),
]

# The same for i386 (gcc -m32): word size 4, %esp, absolute addresses without comments.
SINGLE_32 = [
    ("movb   $0x1,(%eax)", W),
    ("movl   $0x1,0x0", W),
    ("mov    0x0,%eax", R),
    ("mov    0x0,%al", R),
    ("movzbl 0x0,%eax", R),
    ("mov    %eax,0x4(%esp)", W),
    ("mov    0x4(%esp),%eax", R),
    ("cmpb   $0x0,(%edi)", R),
    ("lock incb (%edx)", RW),
    ("addb   $0x0,0x0", RW),
    ("xchg   %al,(%edi)", RW),
    ("movb   $0x1,0x1d(%eax)", W),
    ("movzbl 0x1d(%eax),%edx", R),
    ("lock addb $0x1,0x1d(%eax)", RW),
    ("xchg   %cl,0x1d(%eax)", RW),
    ("mov    %dl,(%ebx)", W),
    ("push   %ebp", W),
    ("pop    %ebp", R),
    ("push   %ebx", W),
    ("push   %ds", W),
    ("pusha", W),
    ("popa", R),
    ("call   0x42 <insns32+66>", W),
    ("call   0x565561c4 <__x86.get_pc_thunk.ax>", W),
    ("call   *%eax", W),
    ("ret", R),
    ("ret    $0x8", R),
    ("repz ret", R),
    ("leave", R),
    ("rep stos %al,%es:(%edi)", W),
    ("stos   %eax,%es:(%edi)", W),
    ("lods   %ds:(%esi),%al", R),
    ("repnz scas %es:(%edi),%al", R),
    ("xlat   %ds:(%ebx)", R),
    ("maskmovdqu %xmm1,%xmm0", W),
    # cache-line flushes trigger data breakpoints as reads (perf counts on this CPU);
    # clzero stores the 64-byte line %rax points into (gdb prints no operand)
    ("clflush (%rdi)", R),
    ("clflushopt (%rdi)", R),
    ("clwb   (%rdi)", R),
    ("clzero", W),
    ("nopw   (%eax,%eax,1)", NONE),
    ("lea    0x0(%esi),%esi", NONE),
    ("lea    0x0(%esi,%eiz,1),%esi", NONE),
    ("lea    %cs:0x0(%esi,%eiz,1),%esi", NONE),
    ("fldl   (%edi)", R),
    ("fstpl  0x8(%esp)", W),
    ("mov    %gs:0x14,%eax", R),
    ("sub    %gs:0x14,%edx", R),
    ("mov    %gs:0x0,%eax", R),
    ("movdqu %xmm0,(%edi)", W),
    ("vmovdqu %ymm0,(%edi)", W),
    ("movsbl (%edi),%eax", R),
    ("cmpxchg8b (%edi)", RW),
    ("lock cmpxchg %ecx,0x0", RW),
]

# Two accesses: without registers the result is the explicit operand's kind, or every
# distinct string access kind in order.
MULTI_FALLBACK = [
    ("push   (%rdi)", R, 8),
    ("push   0x8(%rax)", R, 8),
    ("pushw  (%rdi)", R, 8),
    ("pop    (%rdi)", W, 8),
    ("pop    0x8(%rax)", W, 8),
    ("popw   (%rdi)", W, 8),
    ("call   *0x8(%rax)", R, 8),
    ("call   *0x0(%rip)        # 0xe4 <insns64+228>", R, 8),
    ("lcall  *(%rdi)", R, 8),
    ("movsb  %ds:(%rsi),%es:(%rdi)", RW, 8),
    ("rep movsq %ds:(%rsi),%es:(%rdi)", RW, 8),
    ("rex movsb %ds:(%rsi),%es:(%rdi)", RW, 8),
    ("movsb  %fs:(%rsi),%es:(%rdi)", RW, 8),
    ("cmpsb  %es:(%rdi),%ds:(%rsi)", R, 8),
    ("repz cmpsb %es:(%rdi),%ds:(%rsi)", R, 8),
    ("push   (%edi)", R, 4),
    ("pop    0x8(%eax)", W, 4),
    ("call   *0x8(%eax)", R, 4),
    ("rep movsl %ds:(%esi),%es:(%edi)", RW, 4),
    ("movsb  %ds:(%si),%es:(%di)", RW, 4),
]


def _no_registers(name):
    raise AssertionError(f"read register {name!r} for a one-access instruction")


def _registers(**values):
    """reg() over fixed values; records which registers were read."""
    seen = []

    def reg(name):
        seen.append(name)
        return values[name]

    reg.seen = seen
    return reg


def _classify(text, watch, reg=None, word=8, length=1):
    insn = parse_instruction(text)
    assert insn is not None, text
    return classify_access(insn, watch, length, reg, word)


@pytest.mark.parametrize(("text", "kinds"), SINGLE_64)
def test_single_access_x86_64(text, kinds):
    assert _classify(text, 0x1000, _no_registers, 8) == kinds
    assert accesses_memory(parse_instruction(text)) is (kinds is not None)


@pytest.mark.parametrize(("text", "kinds"), SINGLE_32)
def test_single_access_i386(text, kinds):
    assert _classify(text, 0x1000, _no_registers, 4) == kinds


@pytest.mark.parametrize(("text", "kinds", "word"), MULTI_FALLBACK)
def test_two_accesses_without_registers(text, kinds, word):
    assert _classify(text, 0x1000, None, word) == kinds


def test_failing_register_read_falls_back():
    def broken(name):
        raise RuntimeError("No registers.")  # what gdb.error looks like

    assert _classify("movsb  %ds:(%rsi),%es:(%rdi)", 0x1000, broken) == RW
    assert _classify("push   (%rdi)", 0x1000, broken) == R


# -- stack slots, decided from register values after the instruction -----------------------

SP = 0x7FFFFFFFE000


@pytest.mark.parametrize(
    ("text", "watch", "regs", "kinds"),
    [
        # push mem: slot is [rsp, rsp+8) after the push; the operand is read first.
        ("push   (%rdi)", SP, {"rsp": SP, "rdi": 0x1000}, W),
        ("push   (%rdi)", SP + 7, {"rsp": SP, "rdi": 0x1000}, W),
        ("push   (%rdi)", SP + 8, {"rsp": SP}, R),
        ("push   (%rdi)", 0x1000, {"rsp": SP}, R),
        ("push   (%rdi)", SP, {"rsp": SP, "rdi": SP}, RW),
        ("push   0x8(%rax)", SP + 3, {"rsp": SP, "rax": SP - 5}, RW),
        # the operand address uses rsp from before the push: -0x8(%rsp) is the new slot
        ("push   -0x8(%rsp)", SP, {"rsp": SP}, RW),
        ("push   0x10(%rsp)", SP + 0x18, {"rsp": SP}, R),
        ("pushw  (%rdi)", SP + 1, {"rsp": SP, "rdi": 0x1000}, W),
        ("pushw  (%rdi)", SP + 2, {"rsp": SP}, R),
        # pop mem: slot is [rsp-8, rsp) after the pop; it is read before the operand is written
        ("pop    (%rdi)", SP - 8, {"rsp": SP, "rdi": 0x1000}, R),
        ("pop    (%rdi)", SP - 1, {"rsp": SP, "rdi": 0x1000}, R),
        ("pop    (%rdi)", SP, {"rsp": SP}, W),
        ("pop    0x8(%rax)", 0x1008, {"rsp": SP}, W),
        ("pop    (%rdi)", SP - 8, {"rsp": SP, "rdi": SP - 8}, [READ, WRITE]),
        ("pop    0x8(%rsp)", SP + 8, {"rsp": SP}, W),
        ("pop    -0x8(%rsp)", SP - 8, {"rsp": SP}, [READ, WRITE]),
        # call *mem: reads the pointer, then writes the return address at [rsp, rsp+8)
        ("call   *0x8(%rax)", SP, {"rsp": SP, "rax": 0x1000}, W),
        ("call   *0x8(%rax)", 0x1008, {"rsp": SP}, R),
        ("call   *0x8(%rax)", SP, {"rsp": SP, "rax": SP - 8}, RW),
        ("call   *-0x8(%rsp)", SP, {"rsp": SP}, RW),
        # after a call rip is the target, so a rip-relative pointer cannot be placed
        ("call   *0x0(%rip)        # 0xe4 <insns64+228>", SP, {"rsp": SP}, W),
        ("call   *0x0(%rip)        # 0xe4 <insns64+228>", 0x4010, {"rsp": SP}, R),
        # i386: 4-byte slots, %esp
        ("push   (%edi)", 0xFFFFD000, {"esp": 0xFFFFD000, "edi": 0x1000}, W),
        ("push   (%edi)", 0xFFFFD004, {"esp": 0xFFFFD000}, R),
        ("push   0x8(%eax)", 0x1008, {"esp": 0xFFFFD000}, R),
        ("pop    (%edi)", 0xFFFFCFFC, {"esp": 0xFFFFD000, "edi": 0x1000}, R),
        ("pop    0x8(%eax)", 0xFFFFD000, {"esp": 0xFFFFD000}, W),
        ("call   *0x8(%eax)", 0xFFFFD003, {"esp": 0xFFFFD000, "eax": 0x1000}, W),
        ("call   *0x8(%eax)", 0x1008, {"esp": 0xFFFFD000}, R),
    ],
)
def test_stack_slot_accesses(text, watch, regs, kinds):
    reg = _registers(**regs)
    word = 4 if "esp" in regs else 8
    assert _classify(text, watch, reg, word) == kinds
    assert reg.seen[0] in ("rsp", "esp")  # the slot is tested first: one read when it misses


def test_stack_slot_miss_reads_only_the_stack_pointer():
    reg = _registers(rsp=SP)
    assert _classify("call   *0x8(%rax)", 0x1008, reg) == R
    assert reg.seen == ["rsp"]


@pytest.mark.parametrize(
    ("text", "word", "sp", "size", "offset"),
    [
        ("push   %rbp", 8, "rsp", 8, 0),
        ("call   0xd9 <insns64+217>", 8, "rsp", 8, 0),
        ("ret", 8, "rsp", 8, -8),
        ("ret", 4, "esp", 4, -4),
        ("ret    $0x10", 8, "rsp", 8, -0x18),
        ("ret    $0x8", 4, "esp", 4, -0xC),
        ("retw", 8, "rsp", 2, -2),
        ("leave", 8, "rsp", 8, -8),
        ("leave", 4, "esp", 4, -4),
        ("pop    %ebp", 8, "esp", 4, -4),  # the register names i386 even if told 8
        ("enter  $0x10,$0x0", 8, "rbp", 8, 0),
        ("pushw  (%rdi)", 8, "rsp", 2, 0),
        ("popq   0x8(%rax)", 8, "rsp", 8, -8),
    ],
)
def test_stack_slot_location(text, word, sp, size, offset):
    (slot,) = [a for a in accesses(parse_instruction(text), word) if a.where == "stack"]
    assert (slot.reg, slot.size, slot.offset) == (sp, size, offset)


# -- string instructions ---------------------------------------------------------------------

DF = 1 << 10
MOVSB = "movsb  %ds:(%rsi),%es:(%rdi)"
REP_MOVSB = "rep movsb %ds:(%rsi),%es:(%rdi)"
REP_MOVSQ = "rep movsq %ds:(%rsi),%es:(%rdi)"
CMPSB = "cmpsb  %es:(%rdi),%ds:(%rsi)"
REPZ_CMPSB = "repz cmpsb %es:(%rdi),%ds:(%rsi)"


@pytest.mark.parametrize(
    ("text", "watch", "regs", "kinds"),
    [
        # non-rep, DF=0: the element just accessed is [reg - size, reg)
        (MOVSB, 0x2000, {"eflags": 0x246, "rsi": 0x2001, "rdi": 0x3001}, R),
        (MOVSB, 0x3000, {"eflags": 0x246, "rsi": 0x2001, "rdi": 0x3001}, W),
        (MOVSB, 0x2000, {"eflags": 0x246, "rsi": 0x2001, "rdi": 0x2001}, RW),
        # non-rep, DF=1: the element is [reg + size, reg + 2*size)
        (MOVSB, 0x2000, {"eflags": 0x246 | DF, "rsi": 0x1FFF, "rdi": 0x2FFF}, R),
        (MOVSB, 0x3000, {"eflags": 0x246 | DF, "rsi": 0x1FFF, "rdi": 0x2FFF}, W),
        ("movsq  %ds:(%rsi),%es:(%rdi)", 0x2003, {"eflags": 0, "rsi": 0x2008, "rdi": 0x3008}, R),
        ("movsq  %ds:(%rsi),%es:(%rdi)", 0x3007, {"eflags": 0, "rsi": 0x2008, "rdi": 0x3008}, W),
        ("movsq  %ds:(%rsi),%es:(%rdi)", 0x3007, {"eflags": DF, "rsi": 0x1FF8, "rdi": 0x2FF8}, W),
        ("movsw  %ds:(%rsi),%es:(%rdi)", 0x3001, {"eflags": 0, "rsi": 0x2002, "rdi": 0x3002}, W),
        ("movsl  %ds:(%rsi),%es:(%rdi)", 0x2003, {"eflags": 0, "rsi": 0x2004, "rdi": 0x3004}, R),
        (CMPSB, 0x2000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x3001}, R),
        (CMPSB, 0x3000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x3001}, R),
        # comparing a byte with itself reads it twice
        (CMPSB, 0x2000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x2001}, [READ, READ]),
        # neither element covers the byte: fall back to every kind in order
        (MOVSB, 0x5000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x3001}, RW),
        (CMPSB, 0x5000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x3001}, R),
        # rep: the trap may come some iterations late; nearest register behind the byte wins
        (REP_MOVSB, 0x2000, {"eflags": 0, "rsi": 0x2100, "rdi": 0x3100}, R),
        (REP_MOVSB, 0x3050, {"eflags": 0, "rsi": 0x2100, "rdi": 0x3100}, W),
        (REP_MOVSB, 0x2000, {"eflags": 0, "rsi": 0x2100, "rdi": 0x2100}, RW),
        (REP_MOVSB, 0x20FF, {"eflags": 0, "rsi": 0x2100, "rdi": 0x2180}, R),
        (REP_MOVSB, 0x20FF, {"eflags": 0, "rsi": 0x2180, "rdi": 0x2100}, W),
        # overlapping memmove: both registers are behind; the nearer one made the access
        (REP_MOVSB, 0x2050, {"eflags": 0, "rsi": 0x2060, "rdi": 0x2070}, R),
        (REP_MOVSB, 0x2000, {"eflags": DF, "rsi": 0x1FFF, "rdi": 0x2FFF}, R),
        (REP_MOVSB, 0x3000, {"eflags": DF, "rsi": 0x1F00, "rdi": 0x2F00}, W),
        (REP_MOVSQ, 0x3000, {"eflags": DF, "rsi": 0x1000, "rdi": 0x2FF8}, W),
        # not reached yet, or farther than REP_REACH: undecided
        (REP_MOVSB, 0x9000, {"eflags": 0, "rsi": 0x2100, "rdi": 0x3100}, RW),
        (REP_MOVSB, 0x3000, {"eflags": 0, "rsi": 0x2100, "rdi": 0x3000 + REP_REACH + 1}, RW),
        (REP_MOVSB, 0x3000, {"eflags": 0, "rsi": 0x2100, "rdi": 0x3000 + REP_REACH}, W),
        (REPZ_CMPSB, 0x2000, {"eflags": 0, "rsi": 0x2010, "rdi": 0x3010}, R),
        ("repnz cmpsq %es:(%rdi),%ds:(%rsi)", 0x3000, {"eflags": 0, "rsi": 0x10, "rdi": 0x3010}, R),
        # i386 and address-size overrides name the registers to read
        ("movsb  %ds:(%esi),%es:(%edi)", 0x2000, {"eflags": 0, "esi": 0x2001, "edi": 0x3001}, R),
        ("rep movsl %ds:(%esi),%es:(%edi)", 0x3000, {"eflags": 0, "esi": 0x2010, "edi": 0x3010}, W),
        ("movsb  %ds:(%si),%es:(%di)", 0x3000, {"eflags": 0, "si": 0x2001, "di": 0x3001}, W),
    ],
)
def test_string_accesses(text, watch, regs, kinds):
    word = 4 if "esi" in regs else 8
    assert _classify(text, watch, _registers(**regs), word) == kinds


def test_string_registers_follow_the_text():
    assert [a.reg for a in accesses(parse_instruction("cmpsb  %es:(%rdi),%ds:(%rsi)"))] == [
        "rsi",
        "rdi",
    ]
    assert [a.reg for a in accesses(parse_instruction("movsb  %ds:(%esi),%es:(%edi)"))] == [
        "esi",
        "edi",
    ]
    assert [a.size for a in accesses(parse_instruction("rep stos %rax,%es:(%rdi)"))] == [8]
    assert [a.size for a in accesses(parse_instruction("rep lods %ds:(%rsi),%ax"))] == [2]
    bare = accesses(parse_instruction("movsl"), 4)  # no operands printed: word-size defaults
    assert [(a.reg, a.size) for a in bare] == [("esi", 4), ("edi", 4)]


@pytest.mark.parametrize(
    ("text", "watch", "regs", "near"),
    [
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": 0, "rdi": 0x3001}, True),
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": 0, "rdi": 0x3000}, False),
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": 0, "rdi": 0x2000}, False),
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": 0, "rdi": 0x3000 + (2 << 20)}, False),
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": DF, "rdi": 0x2FFF}, True),
        ("rep stos %al,%es:(%rdi)", 0x3000, {"eflags": DF, "rdi": 0x3000}, False),
        ("rep stos %rax,%es:(%rdi)", 0x3000, {"eflags": DF, "rdi": 0x2FF8}, True),
        (REP_MOVSB, 0x2000, {"eflags": 0, "rsi": 0x2040, "rdi": 0x1000}, True),
        (REP_MOVSB, 0x2000, {"eflags": 0, "rsi": 0x1000, "rdi": 0x2040}, True),
        (REP_MOVSB, 0x2000, {"eflags": 0, "rsi": 0x1000, "rdi": 0x1800}, False),
        ("repnz scas %es:(%edi),%al", 0x3000, {"eflags": 0, "edi": 0x3004}, True),
        # only an in-progress rep string instruction qualifies
        (MOVSB, 0x2000, {"eflags": 0, "rsi": 0x2001, "rdi": 0x3001}, False),
        ("mov    (%rdi),%al", 0x2000, {}, False),
    ],
)
def test_string_access_near(text, watch, regs, near):
    insn = parse_instruction(text)
    assert string_access_near(insn, watch, 1, _registers(**regs)) is near


def test_is_string_and_is_rep():
    cases = {
        "rep stos %al,%es:(%rdi)": (True, True),
        "repnz scas %es:(%rdi),%al": (True, True),
        "repz cmpsb %es:(%rdi),%ds:(%rsi)": (True, True),
        "repnz movsb %ds:(%rsi),%es:(%rdi)": (True, True),
        "movsb  %ds:(%rsi),%es:(%rdi)": (True, False),
        "insb   (%dx),%es:(%rdi)": (True, False),
        "repz ret": (False, False),
        "movsbl (%rdi),%eax": (False, False),
        "movslq (%rdi),%rax": (False, False),
        "movsd  (%rdi),%xmm0": (False, False),
        "movss  %xmm0,(%rdi)": (False, False),
        "insertps $0x0,(%rdi),%xmm0": (False, False),
    }
    for text, expected in cases.items():
        insn = parse_instruction(text)
        assert (insn.is_string, insn.is_rep) == expected, text


# -- parsing -------------------------------------------------------------------------------


def test_parse_splits_prefixes_mnemonic_operands():
    insn = parse_instruction("lock addb $0x1,0x2eda(%rip)        # 0x555555558019 <counter>")
    assert insn.text == "lock addb $0x1,0x2eda(%rip)        # 0x555555558019 <counter>"
    assert insn.prefixes == ("lock",)
    assert insn.mnemonic == "addb"
    assert insn.operands == ("$0x1", "0x2eda(%rip)")
    assert parse_instruction("rep stos %al,%es:(%rdi)").prefixes == ("rep",)
    assert parse_instruction("data16 cs nopw 0x0(%rax,%rax,1)").prefixes == ("data16", "cs")
    assert parse_instruction("rex.WRXB xchg %rax,%r8").prefixes == ("rex.wrxb",)
    assert parse_instruction("xacquire lock incb (%rdi)").prefixes == ("xacquire", "lock")
    assert parse_instruction("je,pn  0x24 <odd+36>").mnemonic == "je"
    cpp = "call   0x401136 <std::vector<int, std::allocator<int> >::push_back(int const&)>"
    assert parse_instruction(cpp).operands == ("0x401136",)
    gather = parse_instruction("vpscatterdd %zmm0,(%rdi,%zmm0,4){%k1}")
    assert gather.operands == ("%zmm0", "(%rdi,%zmm0,4){%k1}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "(bad)",
        "rex.B",  # a prefix gdb printed on its own line
        "lock",
        "vpgatherdd %xmm0/(bad),(%rdi,%xmm0,4)/(bad),%xmm0/(bad)",
        "hello world",
        "mov    %rax,,%rbx",
        "mov    (%rax,%rbx",
        "mov    %rax),(%rbx",
        "movb   $0x1,(%rax",
        "Cannot access memory at address 0x0",
        "=> 0x401000 <main+4>:\tmov %eax,%ebx",
        "0x0000000000401136",
        "\x00\xff",
        None,
        42,
    ],
)
def test_parse_rejects_non_instructions(text):
    assert parse_instruction(text) is None


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("(%rax)", MemOperand(None, 0, "rax", None, 1)),
        ("0x2ed6(%rip)", MemOperand(None, 0x2ED6, "rip", None, 1)),
        ("-0x10(%rbp)", MemOperand(None, -0x10, "rbp", None, 1)),
        ("0x10(%rdi,%rcx,1)", MemOperand(None, 0x10, "rdi", "rcx", 1)),
        ("0x0(,%rax,8)", MemOperand(None, 0, None, "rax", 8)),
        ("%fs:0x28", MemOperand("fs", 0x28, None, None, 1)),
        ("%es:(%rdi)", MemOperand("es", 0, "rdi", None, 1)),
        ("%cs:0x0(%esi,%eiz,1)", MemOperand("cs", 0, "esi", "eiz", 1)),
        ("*0x8(%rax)", MemOperand(None, 8, "rax", None, 1)),
        ("(%rdi){1to16}", MemOperand(None, 0, "rdi", None, 1)),
        ("0x1122334455667788", MemOperand(None, 0x1122334455667788, None, None, 1)),
        ("%rax", None),
        ("$0x1", None),
        ("", None),
    ],
)
def test_parse_mem_operand(text, op):
    assert parse_mem_operand(text) == op


def test_explicit_memory_operands():
    def operands(text: str) -> list[MemOperand]:
        found = accesses(parse_instruction(text))
        return [access.operand for access in found if access.operand is not None]

    assert operands("mov    %fs:0x28,%rax") == [MemOperand("fs", 0x28, None, None, 1)]
    assert operands("call   0xd9 <insns64+217>") == []
    assert operands("in     (%dx),%al") == []


def test_accesses_are_cached():
    insn = parse_instruction("lock incb (%rdx)")
    assert accesses(insn) is accesses(parse_instruction("lock incb (%rdx)"))


def test_garbage_never_raises():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    alphabet = "%$()*,:{}<># -0123456789abcdefxlqwprsizmtk\t"

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(st.one_of(st.text(), st.text(alphabet=alphabet, max_size=40)))
    def run(text):
        insn = parse_instruction(text)
        if insn is not None:
            classify_access(insn, 0x1000, 1, lambda name: 0x1000)
            accesses_memory(insn)

    run()


# -- helpers -----------------------------------------------------------------------------------


def test_effective_address():
    regs = _registers(rax=0x1000, rcx=3, rip=0x401005, fs_base=0x7FFFF7D8A740, ebp=0x100)
    assert effective_address(parse_mem_operand("0x10(%rax,%rcx,4)"), regs) == 0x101C
    assert effective_address(parse_mem_operand("0x2ed6(%rip)"), regs) == 0x401005 + 0x2ED6
    assert effective_address(parse_mem_operand("%fs:0x28"), regs) == 0x7FFFF7D8A740 + 0x28
    assert effective_address(parse_mem_operand("-0x10(%rax)"), regs) == 0xFF0
    assert effective_address(parse_mem_operand("-0x200(%ebp)"), regs) == 0xFFFFFF00  # wraps
    assert effective_address(parse_mem_operand("0x1234"), regs) == 0x1234
    assert effective_address(parse_mem_operand("0x0(%eax,%eiz,1)"), _registers(eax=7)) == 7
    assert effective_address(parse_mem_operand("%es:(%rax)"), regs) == 0x1000  # no base
    with pytest.raises(ValueError):
        effective_address(parse_mem_operand("(%rdi,%zmm0,4)"), _registers(rdi=0))


def test_kind_from_value():
    assert kind_from_value(1, 2) == WRITE
    assert kind_from_value(1, 1) == READ
    assert kind_from_value(None, 5) == READ


def test_signed_register_values_are_addresses():
    # gdb's int($esp) / int($rsi) are signed: kernel addresses arrive negative
    kernel32 = 0xC1000000
    reg = _registers(esp=kernel32 - (1 << 32))
    assert _classify("push   (%edi)", kernel32, reg, 4) == W
    kernel64 = 0xFFFF888000001000
    regs = {"eflags": 0, "rsi": kernel64 + 0x40 - (1 << 64), "rdi": 0x1000}
    assert _classify(REP_MOVSB, kernel64, _registers(**regs)) == R
    assert string_access_near(parse_instruction(REP_MOVSB), kernel64, 1, _registers(**regs))


def test_xlat_reads_through_rbx_plus_al():
    insn = parse_instruction("xlat   %ds:(%rbx)")
    assert [(a.kind, a.where, a.reg) for a in accesses(insn)] == [(READ, "implicit", "rbx")]
    assert [a.operand for a in accesses(insn)] == [None]  # (%rbx) alone is not the address read


def test_unreadable_operand_register_keeps_the_slot():
    reg = _registers(rsp=SP)  # no rdi: the operand cannot be placed, the slot was hit
    assert _classify("push   (%rdi)", SP, reg) == W


@pytest.mark.parametrize(
    ("operand", "part"),
    [
        ("%rax", ("rax", 0, 8)),
        ("%eax", ("rax", 0, 4)),
        ("%ax", ("rax", 0, 2)),
        ("%al", ("rax", 0, 1)),
        ("%ah", ("rax", 1, 1)),
        ("%dh", ("rdx", 1, 1)),
        ("%sil", ("rsi", 0, 1)),
        ("%spl", ("rsp", 0, 1)),
        ("%bp", ("rbp", 0, 2)),
        ("%r8d", ("r8", 0, 4)),
        ("%r15w", ("r15", 0, 2)),
        ("%r9b", ("r9", 0, 1)),
        ("%rip", ("rip", 0, 8)),
        ("%eip", ("rip", 0, 4)),
        ("rdi", ("rdi", 0, 8)),  # as MemOperand names them, without '%'
        ("%xmm0", None),
        ("%ymm1", None),
        ("%fs", None),
        ("%st(1)", None),
        ("%k1", None),
        ("(%rax)", None),
        ("$0x1", None),
    ],
)
def test_register_part(operand, part):
    assert register_part(operand) == part


@pytest.mark.parametrize(
    ("operand", "value"),
    [
        ("$0x5a", 0x5A),
        ("$0xfffffffffffffffd", 2**64 - 3),
        ("$-3", -3),
        ("$10", 10),
        ("0x5a", None),
        ("%rax", None),
        ("*0x8(%rax)", None),
    ],
)
def test_immediate_value(operand, value):
    assert immediate_value(operand) == value
