"""derive_value: instruction texts exactly as gdb 13.1 prints them, with registers after them.

The texts come from `disassemble` of tests/c/values.c (-O0 and -O2), of libc's memset,
memmove, pthread_mutex_lock/unlock, strcpy and sigsetjmp, of tests/c/mix.c at -O2, and of a
scratch file of the rarer forms (push %rsp, xchg %rax,(%rax), cmpxchg into its own base...)
assembled with gcc -c and gcc -m32 -c; "# 0x... <sym>" comments are gdb's own.  Register
names are perf's (abi.REGISTER_NAMES); a rip-relative operand's rip is chosen so the operand
lands where gdb's comment says.
"""

from __future__ import annotations

import random
import re

import pytest

from gdb_qznusnih.classify.values import (
    REGISTERS,
    UNKNOWN,
    derive_value,
    derive_value_with,
    register_reader,
    value_getter,
)
from gdb_qznusnih.classify.x86 import READ, WRITE, parse_mem_operand
from gdb_qznusnih.perf.abi import REGISTER_NAMES

ZF, CF, SF, OF, DF = 1 << 6, 1 << 0, 1 << 7, 1 << 11, 1 << 10
AREA = 0x5088  # the watched word of values.c in the texts below


def regs(text: str = "", **values: int) -> dict[str, int]:
    """Perf's registers after `text`: zero unless given, flags with only IF, a 64-bit task.
    For a rip-relative operand, rip is the next instruction's address that gdb's comment implies."""
    registers = dict.fromkeys(REGISTER_NAMES, 0)
    registers.update(flags=0x202, cs=0x33, ss=0x2B)
    comment = re.search(r"# (0x[0-9a-f]+)", text)
    if comment and "(%rip)" in text:
        operand = next(part for part in re.split(r"[ ,]", text) if "(%rip)" in part)
        registers["rip"] = int(comment[1], 16) - parse_mem_operand(operand).disp
    registers.update(values)
    return registers


def known(value):
    return (value, REGISTERS)


NONE = (None, UNKNOWN)

# (text, kind, registers given, watch address, watch length, expected)
CASES = [
    # -- stores from an immediate: any width, at any offset of the operand
    ("movb   $0x5a,0x2ec7(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 1, known(0x5A)),
    ("movb   $0x5a,0x2ec7(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 2, NONE),
    ("movb   $0x77,0x3(%rax)", WRITE, {"rax": AREA}, AREA + 3, 1, known(0x77)),
    ("movb   $0x77,0x3(%rax)", WRITE, {"rax": AREA}, AREA, 1, NONE),  # not these bytes
    ("movw   $0x1234,0x2e71(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA + 1, 1, known(0x12)),
    ("movl   $0x89abcdef,0x2e2a(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 4,
     known(0x89ABCDEF)),
    ("movl   $0x89abcdef,0x2e2a(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA + 2, 2,
     known(0x89AB)),
    ("movl   $0x1,0x4(%rdi)", WRITE, {"rdi": 0x2000}, 0x2004, 4, known(1)),
    ("movl   $0x0,0x8(%rdi)", WRITE, {"rdi": 0x2000}, 0x2008, 8, NONE),  # half the watch
    ("movq   $0xfffffffffffffffe,0x2de4(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 8,
     known(0xFFFFFFFFFFFFFFFE)),
    ("movq   $0xfffffffffffffffe,0x2de4(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA + 4,
     4, known(0xFFFFFFFF)),
    ("movq   $0x7fffffff,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2004, 4, known(0)),
    ("movb   $0xff,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2000, 1, known(0xFF)),
    ("movl   $0xffffffff,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2002, 2, known(0xFFFF)),
    # -- stores from a general register: its part, %ah's second byte
    ("mov    %al,0x2eb1(%rip)        # 0x5088 <area+8>", WRITE, {"rax": 0x12A5}, AREA, 1,
     known(0xA5)),
    ("mov    %ah,0x2e9b(%rip)        # 0x5088 <area+8>", WRITE, {"rax": 0xC3D4}, AREA, 1,
     known(0xC3)),
    ("mov    %ah,(%rdx)", WRITE, {"rax": 0xC3D4, "rdx": 0x3000}, 0x3000, 1, known(0xC3)),
    ("mov    %sil,-0x1(%rdi,%rdx,1)", WRITE, {"rsi": 0x41, "rdi": 0x1000, "rdx": 0x10}, 0x100F,
     1, known(0x41)),
    ("mov    %si,-0x2(%rdi,%rdx,1)", WRITE, {"rsi": 0x4142, "rdi": 0x1000, "rdx": 0x10}, 0x100F,
     1, known(0x41)),
    ("mov    %si,-0x2(%rdi,%rdx,1)", WRITE, {"rsi": 0x4142, "rdi": 0x1000, "rdx": 0x10}, 0x100E,
     2, known(0x4142)),
    ("mov    %ecx,-0x4(%rdi,%rdx,1)", WRITE, {"rcx": 0xFFFF_FFFF_89AB_CDEF, "rdi": 0x1000,
     "rdx": 0x10}, 0x100C, 4, known(0x89ABCDEF)),
    ("mov    %ecx,-0x4(%rdi,%rdx,1)", WRITE, {"rcx": 0x89ABCDEF, "rdi": 0x1000, "rdx": 0x10},
     0x1008, 8, NONE),
    ("mov    %rcx,-0x8(%rdi,%rdx,1)", WRITE, {"rcx": 0x0123456789ABCDEF, "rdi": 0x1000,
     "rdx": 0x10}, 0x100C, 4, known(0x01234567)),
    ("mov    %r15,0x28(%rdi)", WRITE, {"r15": 0xF15, "rdi": 0x2000}, 0x2028, 8, known(0xF15)),
    ("mov    %dx,0x2(%rax)", WRITE, {"rdx": 0xCAFE, "rax": AREA}, AREA + 2, 2, known(0xCAFE)),
    ("mov    %rax,(%rdx,%rcx,8)", WRITE, {"rax": 0x0FEDCBA987654321, "rdx": AREA - 8, "rcx": 1},
     AREA, 8, known(0x0FEDCBA987654321)),
    ("movnti %rax,0x2d86(%rip)        # 0x5088 <area+8>", WRITE, {"rax": 0x5555AAAA5555AAAA},
     AREA, 8, known(0x5555AAAA5555AAAA)),
    ("movabs %al,0x1122334455667788", WRITE, {"rax": 0x99}, 0x1122334455667788, 1, known(0x99)),
    ("mov    %eax,%fs:(%rdx)", WRITE, {"rax": 0x1234}, 0x7000, 4, known(0x1234)),  # own width
    ("mov    %eax,%fs:(%rdx)", WRITE, {"rax": 0x1234}, 0x7000, 2, NONE),  # fs base unknown
    ("mov    %ds,(%rax)", WRITE, {"rax": 0x2000}, 0x2000, 2, NONE),  # not in the sample
    ("data16 mov %al,(%rdi)", WRITE, {"rax": 1, "rdi": 0x2000}, 0x2000, 1, NONE),
    ("movbe  %eax,(%rdi)", WRITE, {"rax": 0x11223344, "rdi": 0x2000}, 0x2000, 4, NONE),
    # -- setcc: 0 or 1 from the flags, which it leaves alone
    ("sete   0x2d6c(%rip)        # 0x5088 <area+8>", WRITE, {"flags": 0x202 | ZF}, AREA, 1,
     known(1)),
    ("sete   0x2d6c(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 1, known(0)),
    ("setne  0x10(%rsp)", WRITE, {"rsp": 0x7F00, "flags": ZF}, 0x7F10, 1, known(0)),
    ("setg   (%rdi)", WRITE, {"rdi": 0x2000, "flags": SF | OF}, 0x2000, 1, known(1)),
    ("setl   (%rdi)", WRITE, {"rdi": 0x2000, "flags": SF}, 0x2000, 1, known(1)),
    ("setb   0x1(%rdi)", WRITE, {"rdi": 0x2000, "flags": CF}, 0x2001, 1, known(1)),
    ("seta   (%rdi)", WRITE, {"rdi": 0x2000, "flags": CF}, 0x2000, 1, known(0)),
    ("sete   0x2d6c(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 2, NONE),
    # -- push: register, immediate (sign-extended by gdb already), the old %rsp
    ("push   %rdx", WRITE, {"rdx": 0x7777666655554444, "rsp": 0x7FF0}, 0x7FF0, 8,
     known(0x7777666655554444)),
    ("push   %rdx", WRITE, {"rdx": 0x7777666655554444, "rsp": 0x7FF0}, 0x7FF4, 4,
     known(0x77776666)),
    ("push   %rbx", WRITE, {"rbx": 0xB, "rsp": 0x7FF0}, 0x7FE8, 8, NONE),  # not its slot
    ("push   $0xfffffffffffffffd", WRITE, {"rsp": 0x7FF0}, 0x7FF0, 8, known(2**64 - 3)),
    ("push   $0x12345678", WRITE, {"rsp": 0x7FF0}, 0x7FF4, 4, known(0)),
    ("pushw  $0x1234", WRITE, {"rsp": 0x7FF0}, 0x7FF0, 2, known(0x1234)),
    ("pushw  $0x1234", WRITE, {"rsp": 0x7FF0}, 0x7FF0, 4, NONE),
    ("push   %rsp", WRITE, {"rsp": 0x7FF0}, 0x7FF0, 8, known(0x7FF8)),
    # -- stos: one element where rdi was; rep: every element, any of them
    ("stos   %rax,%es:(%rdi)", WRITE, {"rax": 0x2468ACE013579BDF, "rdi": AREA + 8}, AREA, 8,
     known(0x2468ACE013579BDF)),
    ("stos   %rax,%es:(%rdi)", WRITE, {"rax": 0x2468ACE013579BDF, "rdi": AREA - 8,
     "flags": DF}, AREA + 4, 4, known(0x2468ACE0)),
    ("stos   %al,%es:(%rdi)", WRITE, {"rax": 0x3C, "rdi": 0x2001}, 0x2000, 1, known(0x3C)),
    ("stos   %al,%es:(%rdi)", WRITE, {"rax": 0x3C, "rdi": 0x2001}, 0x2001, 1, NONE),
    ("rep stos %al,%es:(%rdi)", WRITE, {"rax": 0x3C, "rcx": 5, "rdi": 0x2010}, 0x2003, 1,
     known(0x3C)),
    ("rep stos %al,%es:(%rdi)", WRITE, {"rax": 0x3C, "rcx": 5, "rdi": 0x2010}, 0x2000, 2, NONE),
    ("rep stos %eax,%es:(%rdi)", WRITE, {"rax": 0x600DCAFE, "rdi": 0x2008}, 0x2004, 4,
     known(0x600DCAFE)),
    ("rep stos %eax,%es:(%rdi)", WRITE, {"rax": 0x600DCAFE, "rdi": 0x2008}, 0x2002, 2,
     known(0x600D)),
    ("rep stos %eax,%es:(%rdi)", WRITE, {"rax": 0x600DCAFE, "rdi": 0x2008}, 0x2000, 8, NONE),
    ("rep stos %eax,%es:(%rdi)", WRITE, {"rax": 0x600DCAFE, "rdi": 0x2006}, 0x2002, 4,
     known(0x600DCAFE)),
    ("rep stos %eax,%es:(%rdi)", WRITE, {"rax": 0x600DCAFE, "rdi": 0x2006}, 0x2000, 4, NONE),
    ("rep stos %ax,%es:(%rdi)", WRITE, {"rax": 0xABCD, "rdi": 0x2008}, 0x2001, 1, known(0xAB)),
    # -- cmpxchg: ZF says whether memory took the source or kept its value
    ("lock cmpxchg %edx,(%rdi)", WRITE, {"rax": 1, "rdx": 2, "rdi": 0x2000, "flags": ZF},
     0x2000, 4, known(2)),
    ("lock cmpxchg %edx,(%rdi)", WRITE, {"rax": 7, "rdx": 2, "rdi": 0x2000}, 0x2000, 4,
     known(7)),
    ("lock cmpxchg %edx,(%rdi)", READ, {"rax": 1, "rdx": 2, "rdi": 0x2000, "flags": ZF},
     0x2000, 4, known(1)),
    ("lock cmpxchg %edx,(%rdi)", READ, {"rax": 7, "rdx": 2, "rdi": 0x2000}, 0x2000, 4, known(7)),
    ("lock cmpxchg %r8d,(%rdi)", WRITE, {"r8": 0x88, "rdi": 0x2000, "flags": ZF}, 0x2000, 1,
     known(0x88)),
    ("lock cmpxchg %rdx,0x2c1f(%rip)        # 0x5088 <area+8>", WRITE,
     {"rdx": 0x00C0FFEE00C0FFEE, "flags": ZF}, AREA + 4, 4, known(0x00C0FFEE)),
    ("cmpxchg %cl,(%rdi)", WRITE, {"rax": 0x1, "rcx": 0x2, "rdi": 0x2000}, 0x2000, 1, known(1)),
    ("cmpxchg %r8w,0x10(%rsp)", READ, {"rax": 0xBEEF, "rsp": 0x7F00}, 0x7F10, 2, known(0xBEEF)),
    # the accumulator is its own base: where it pointed is lost, only the watch's width holds
    ("lock cmpxchg %edx,(%rax)", READ, {"rax": 0x12345678}, 0x2000, 4, known(0x12345678)),
    ("lock cmpxchg %edx,(%rax)", READ, {"rax": 0x12345678}, 0x2000, 2, NONE),
    ("lock cmpxchg16b (%rsi)", WRITE, {"rbx": 0xB, "rcx": 0xC, "rsi": AREA - 8, "flags": ZF},
     AREA, 8, known(0xC)),
    ("lock cmpxchg16b (%rsi)", READ, {"rax": 0xA, "rdx": 0xD, "rsi": AREA - 8, "flags": ZF},
     AREA - 8, 8, known(0xA)),
    ("lock cmpxchg16b (%rsi)", WRITE, {"rax": 0xA, "rdx": 0xD, "rsi": AREA - 8}, AREA, 8,
     known(0xD)),
    ("cmpxchg8b (%rdi)", WRITE, {"rbx": 0xB, "rcx": 0xC, "rdi": 0x2000, "flags": ZF}, 0x2000, 8,
     known(0xC0000000B)),
    ("cmpxchg8b (%rdi)", READ, {"rax": 0xA, "rdx": 0xD, "rdi": 0x2000}, 0x2004, 4, known(0xD)),
    # -- xchg and xadd: the register holds the old value; the new one was in it before
    ("xchg   %eax,(%rdi)", READ, {"rax": 0x55, "rdi": 0x2000}, 0x2000, 4, known(0x55)),
    ("xchg   %eax,(%rdi)", WRITE, {"rax": 0x55, "rdi": 0x2000}, 0x2000, 4, NONE),
    ("xchg   %rax,0x2a7e(%rip)        # 0x5088 <area+8>", READ, {"rax": 0x0C0C0C0C0C0C0C0C},
     AREA, 8, known(0x0C0C0C0C0C0C0C0C)),
    ("xchg   %ah,(%rdi)", READ, {"rax": 0x4200, "rdi": 0x2000}, 0x2000, 1, known(0x42)),
    ("xchg   %rax,(%rax)", READ, {"rax": 0x1234}, 0x2000, 8, known(0x1234)),
    ("xchg   %rax,(%rax)", READ, {"rax": 0x1234}, 0x2000, 4, NONE),
    ("lock xadd %eax,0x2b7b(%rip)        # 0x5088 <area+8>", READ, {"rax": 0x77776666}, AREA,
     4, known(0x77776666)),
    ("lock xadd %eax,0x2b7b(%rip)        # 0x5088 <area+8>", WRITE, {"rax": 0x77776666}, AREA,
     4, NONE),
    ("xadd   %r8,(%rsi)", READ, {"r8": 0x8, "rsi": 0x2000}, 0x2000, 8, known(8)),
    # -- read-modify-write arithmetic, SIMD, movs: the registers do not have it
    ("addb   $0x3,0x2a29(%rip)        # 0x5088 <area+8>", READ, {}, AREA, 1, NONE),
    ("addb   $0x3,0x2a29(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 1, NONE),
    ("lock add %rax,0x2a11(%rip)        # 0x5088 <area+8>", WRITE, {"rax": 1}, AREA, 8, NONE),
    ("incb   (%rbx)", WRITE, {"rbx": 0x2000}, 0x2000, 1, NONE),
    ("lock incb (%rbx)", READ, {"rbx": 0x2000}, 0x2000, 1, NONE),
    ("movq   %xmm0,0x29fa(%rip)        # 0x5088 <area+8>", WRITE, {}, AREA, 8, NONE),
    ("movq   0x29e7(%rip),%xmm1        # 0x5088 <area+8>", READ, {}, AREA, 8, NONE),
    ("movaps %xmm0,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2000, 8, NONE),
    ("movups (%rsi),%xmm0", READ, {"rsi": 0x2000}, 0x2000, 8, NONE),
    ("movntdq %xmm0,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2000, 8, NONE),
    ("vmovdqu %ymm0,-0x20(%rdi,%rdx,1)", WRITE, {"rdi": 0x2000, "rdx": 0x20}, 0x2000, 8, NONE),
    ("vmovd  %xmm0,(%rdi)", WRITE, {"rdi": 0x2000}, 0x2000, 4, NONE),
    ("movsq  %ds:(%rsi),%es:(%rdi)", WRITE, {"rsi": 0x3008, "rdi": 0x2008}, 0x2000, 8, NONE),
    ("movsq  %ds:(%rsi),%es:(%rdi)", READ, {"rsi": 0x2008, "rdi": 0x3008}, 0x2000, 8, NONE),
    ("rep movsb %ds:(%rsi),%es:(%rdi)", WRITE, {"rdi": 0x2008}, 0x2000, 1, NONE),
    ("movbe  (%rdi),%eax", READ, {"rax": 0x44332211, "rdi": 0x2000}, 0x2000, 4, NONE),
    ("test   %al,(%rdi)", READ, {"rdi": 0x2000, "flags": ZF}, 0x2000, 1, NONE),
    ("xlat   %ds:(%rbx)", READ, {"rax": 0x5, "rbx": 0x2000}, 0x2005, 1, NONE),
    # -- loads: the bytes read are the low part of the register, however extended
    ("mov    0x2904(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xF1E2D3C4B5A69788},
     AREA, 8, known(0xF1E2D3C4B5A69788)),
    ("mov    0x2904(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xF1E2D3C4B5A69788},
     AREA + 3, 1, known(0xB5)),
    ("mov    0x2925(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0xB5A69788}, AREA, 4,
     known(0xB5A69788)),
    ("mov    0x2925(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0xB5A69788}, AREA, 8,
     NONE),
    ("movzbl 0x29c9(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0x88}, AREA, 1,
     known(0x88)),
    ("movsbl 0x29a8(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0xFFFFFF88}, AREA, 1,
     known(0x88)),
    ("movsbl 0x29a8(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0xFFFFFF88}, AREA, 2,
     NONE),
    ("movzwl 0x2987(%rip),%eax        # 0x5088 <area+8>", READ, {"rax": 0x9788}, AREA, 2,
     known(0x9788)),
    ("movswl 0x14(%rdi),%eax", READ, {"rax": 0xFFFF9788, "rdi": 0x2000}, 0x2014, 2,
     known(0x9788)),
    ("movslq 0x2acf(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xFFFFFFFFB5A69788},
     AREA, 4, known(0xB5A69788)),
    ("movslq 0x2acf(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xFFFFFFFFB5A69788},
     AREA, 8, NONE),
    ("movsbq (%rdi),%rax", READ, {"rax": 2**64 - 1, "rdi": 0x2000}, 0x2000, 1, known(0xFF)),
    ("movzbw (%rdi),%ax", READ, {"rax": 0x7F, "rdi": 0x2000}, 0x2000, 1, known(0x7F)),
    ("movsbw (%rdi),%ax", READ, {"rax": 0xFF80, "rdi": 0x2000}, 0x2000, 1, known(0x80)),
    ("movswq (%rdi),%rcx", READ, {"rcx": 2**64 - 2, "rdi": 0x2000}, 0x2000, 2, known(0xFFFE)),
    ("movzwq (%rdi),%rcx", READ, {"rcx": 0xFFFE, "rdi": 0x2000}, 0x2000, 2, known(0xFFFE)),
    ("mov    0x28e4(%rip),%ah        # 0x5088 <area+8>", READ, {"rax": 0x8800}, AREA, 1,
     known(0x88)),
    ("mov    (%rsi),%al", READ, {"rax": 0x1234, "rsi": 0x2000}, 0x2000, 1, known(0x34)),
    ("mov    -0x8(%rsi,%rdx,1),%rcx", READ, {"rcx": 0x0123456789ABCDEF, "rsi": 0x2000,
     "rdx": 0x10}, 0x200C, 4, known(0x01234567)),
    ("mov    0x4(%rdi),%eax", READ, {"rax": 0x44, "rdi": 0x2000}, 0x2004, 4, known(0x44)),
    ("mov    (%rsp),%rax", READ, {"rax": 0x401000, "rsp": 0x7F00}, 0x7F00, 8, known(0x401000)),
    ("movabs 0x1122334455667788,%al", READ, {"rax": 0x99}, 0x1122334455667788, 1, known(0x99)),
    ("mov    %fs:0x28,%rax", READ, {"rax": 0xCA7A}, 0x7000, 8, known(0xCA7A)),
    ("mov    %fs:0x28,%rax", READ, {"rax": 0xCA7A}, 0x7000, 4, NONE),
    # the load overwrote its own base or index: only an access of the watch's width is known
    ("mov    (%rsi),%rsi", READ, {"rsi": 0x5151}, 0x2000, 8, known(0x5151)),
    ("mov    (%rsi),%rsi", READ, {"rsi": 0x5151}, 0x2000, 4, NONE),
    ("mov    0x320(%rax),%rax", READ, {"rax": 0x320}, 0x2000, 8, known(0x320)),
    ("movzbl (%rax),%eax", READ, {"rax": 0x7A}, 0x2000, 1, known(0x7A)),
    ("movzbl (%rax),%eax", READ, {"rax": 0x7A}, 0x2000, 2, NONE),
    ("mov    (%rdx,%rax,4),%eax", READ, {"rax": 0x9, "rdx": 0x2000}, 0x2008, 2, NONE),
    ("mov    (%rdx,%rax,4),%edx", READ, {"rax": 2, "rdx": 0xEEEE}, 0x2008, 2, NONE),
    ("mov    (%rdx,%rax,4),%edx", READ, {"rax": 2, "rdx": 0xEEEE}, 0x2008, 4, known(0xEEEE)),
    # -- cmov: the register shows the load only when the condition held
    ("cmove  0x289b(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xAB, "flags": ZF},
     AREA, 8, known(0xAB)),
    ("cmove  0x289b(%rip),%rax        # 0x5088 <area+8>", READ, {"rax": 0xAB}, AREA, 8, NONE),
    ("cmovne 0x8(%rsp),%rax", READ, {"rax": 0xAB, "rsp": 0x7F00}, 0x7F08, 8, known(0xAB)),
    ("cmovl  (%rdi),%eax", READ, {"rax": 0xAB, "rdi": 0x2000, "flags": OF}, 0x2000, 4,
     known(0xAB)),
    ("cmova  (%rdi),%rax", READ, {"rax": 0xAB, "rdi": 0x2000, "flags": ZF}, 0x2000, 8, NONE),
    ("cmovs  (%rdi),%r9d", READ, {"r9": 0xAB, "rdi": 0x2000, "flags": SF}, 0x2000, 4,
     known(0xAB)),
    # -- cmp: with ZF set, memory equalled the other operand
    ("cmp    %rax,0x2a3b(%rip)        # 0x5088 <area+8>", READ, {"rax": 0xF00D, "flags": ZF},
     AREA, 8, known(0xF00D)),
    ("cmp    %rax,0x2a3b(%rip)        # 0x5088 <area+8>", READ, {"rax": 0xF00D}, AREA, 8, NONE),
    ("cmp    0x130551(%rip),%rdx        # 0x1d33d8 <__x86_rep_movsb_threshold>", READ,
     {"rdx": 0x800, "flags": ZF}, 0x1D33D8, 8, known(0x800)),
    ("cmpq   $0x2a,0x2a30(%rip)        # 0x5088 <area+8>", READ, {"flags": ZF}, AREA, 8,
     known(0x2A)),
    ("cmpb   $0x0,(%rbx)", READ, {"rbx": 0x2000, "flags": ZF}, 0x2000, 1, known(0)),
    ("cmpw   $0x7fff,(%rdi)", READ, {"rdi": 0x2000, "flags": ZF}, 0x2000, 2, known(0x7FFF)),
    ("cmpl   $0xffffffff,(%rdi)", READ, {"rdi": 0x2000, "flags": ZF}, 0x2002, 2, known(0xFFFF)),
    ("cmpq   $0xffffffffffffffff,(%rdi)", READ, {"rdi": 0x2000, "flags": ZF}, 0x2000, 8,
     known(2**64 - 1)),
    ("cmp    %cl,(%rdi)", READ, {"rcx": 0x1234, "rdi": 0x2000, "flags": ZF}, 0x2000, 1,
     known(0x34)),
    # -- stack reads: pop, ret, leave; lods
    ("pop    %rax", READ, {"rax": 2**64 - 3, "rsp": 0x7FF8}, 0x7FF0, 8, known(2**64 - 3)),
    ("pop    %rbp", READ, {"rbp": 0x7FA0, "rsp": 0x7FF8}, 0x7FF4, 4, known(0)),
    ("pop    %rsp", READ, {"rsp": 0x7E00}, 0x7FF0, 8, known(0x7E00)),  # its own address
    ("pop    %rsp", READ, {"rsp": 0x7E00}, 0x7FF0, 4, NONE),
    ("ret", READ, {"rip": 0x401234, "rsp": 0x7FF8}, 0x7FF0, 8, known(0x401234)),
    ("ret    $0x8", READ, {"rip": 0x401234, "rsp": 0x8000}, 0x7FF0, 8, known(0x401234)),
    ("ret", READ, {"rip": 0x401234, "rsp": 0x8000}, 0x7FF0, 8, NONE),
    ("leave", READ, {"rbp": 0x7FC0, "rsp": 0x7FA8}, 0x7FA0, 8, known(0x7FC0)),
    ("lret", READ, {"rip": 0x401234, "rsp": 0x8000}, 0x7FF0, 8, NONE),
    ("lods   %ds:(%rsi),%rax", READ, {"rax": 0x1122334455667788, "rsi": AREA + 8}, AREA, 8,
     known(0x1122334455667788)),
    ("lods   %ds:(%rsi),%eax", READ, {"rax": 0x11223344, "rsi": 0x2000, "flags": DF}, 0x2004,
     2, known(0x3344)),
    ("rep lods %ds:(%rsi),%al", READ, {"rax": 0x11, "rsi": 0x2001}, 0x2000, 1, NONE),
    # -- branches through memory: rip is the pointer they read
    ("jmp    *0x2fe2(%rip)        # 0x4018 <puts@got.plt>", READ, {"rip": 0x7F0012345670},
     0x4018, 8, known(0x7F0012345670)),
    ("jmp    *0x2fe2(%rip)        # 0x4018 <puts@got.plt>", READ, {"rip": 0x7F0012345670},
     0x401C, 4, NONE),
    ("call   *0x8(%rax)", READ, {"rip": 0x7F0012345670, "rax": 0x2000}, 0x200C, 4,
     known(0x7F00)),
    ("call   *0x8(%rsp)", READ, {"rip": 0x401000, "rsp": 0x7F00}, 0x7F00, 4, NONE),
    # -- the wrong kind for the instruction, or no instruction
    ("movb   $0x5a,0x2ec7(%rip)        # 0x5088 <area+8>", READ, {}, AREA, 1, NONE),
    ("mov    0x2904(%rip),%rax        # 0x5088 <area+8>", WRITE, {"rax": 1}, AREA, 8, NONE),
    ("(bad)", WRITE, {}, AREA, 1, NONE),
    ("nop", READ, {}, AREA, 1, NONE),
    ("bswap  %eax", READ, {}, AREA, 1, NONE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "given", "address", "length", "expected"),
    CASES,
    ids=[f"{case[0].split('#')[0].strip()}-{case[1]}-{case[3]:#x}+{case[4]}" for case in CASES],
)
def test_derive_value(text, kind, given, address, length, expected):
    assert derive_value(text, kind, regs(text, **given), address, length) == expected


# 32-bit tasks (cs 0x23): a push of an immediate, ret and stack slots are 4 bytes
CASES_32 = [
    ("push   $0x1", WRITE, {"rsp": 0xFFF0}, 0xFFF0, 4, known(1)),
    ("push   $0x1", WRITE, {"rsp": 0xFFF0}, 0xFFF0, 8, NONE),
    ("push   %ebp", WRITE, {"rbp": 0xFFAA, "rsp": 0xFFF0}, 0xFFF0, 4, known(0xFFAA)),
    ("pop    %ebx", READ, {"rbx": 0xB, "rsp": 0xFFF4}, 0xFFF0, 4, known(0xB)),
    ("ret", READ, {"rip": 0x8049000, "rsp": 0xFFF4}, 0xFFF0, 4, known(0x8049000)),
    ("ret    $0x8", READ, {"rip": 0x8049000, "rsp": 0xFFFC}, 0xFFF0, 4, known(0x8049000)),
    ("mov    %eax,(%esp)", WRITE, {"rax": 0x42, "rsp": 0xFFF0}, 0xFFF0, 4, known(0x42)),
    ("lock cmpxchg8b (%edi)", WRITE, {"rbx": 1, "rcx": 2, "rdi": 0xA000, "flags": ZF}, 0xA000,
     8, known(0x200000001)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "kind", "given", "address", "length", "expected"), CASES_32)
def test_derive_value_in_a_32_bit_task(text, kind, given, address, length, expected):
    registers = regs(text, cs=0x23, ss=0x2B, **given)
    assert derive_value(text, kind, registers, address, length) == expected


def test_an_access_address_the_caller_knows_places_the_watch_in_a_wide_load():
    text = "mov    (%rsi),%rsi"  # the base is gone: alone, only a whole-word watch is known
    registers = regs(rsi=0x0123456789ABCDEF)
    assert derive_value(text, READ, registers, 0x2004, 4) == NONE
    assert derive_value(text, READ, registers, 0x2004, 4, access_address=0x2000) == known(
        0x01234567
    )
    assert derive_value(text, READ, registers, 0x2004, 4, access_address=0x2002) == known(
        0x456789AB
    )
    assert derive_value(text, READ, registers, 0x2004, 4, access_address=0x2006) == NONE


def test_gdb_register_dicts_work_too_signed_values_and_eflags():
    """gdb gives registers as signed integers and calls the flags eflags."""
    registers = {name: 0 for name in REGISTER_NAMES if name != "flags"}
    registers.update(rax=-1, rdi=0x2000, rdx=-2, eflags=ZF)
    assert derive_value("mov    %eax,0x4(%rdi)", WRITE, registers, 0x2004, 4) == known(0xFFFFFFFF)
    assert derive_value("lock cmpxchg %edx,(%rdi)", WRITE, registers, 0x2000, 4) == known(
        0xFFFFFFFE
    )


def test_a_sample_without_the_registers_it_needs_is_unknown():
    registers = regs(rdi=0x2000, rdx=2)
    del registers["flags"]
    assert derive_value("lock cmpxchg %edx,(%rdi)", WRITE, registers, 0x2000, 4) == NONE
    del registers["rdx"]
    assert derive_value("mov    %edx,(%rdi)", WRITE, registers, 0x2000, 4) == NONE
    assert derive_value("mov    %edx,(%rdi)", WRITE, {}, 0x2000, 4) == NONE


@pytest.mark.parametrize("length", [0, -1])
def test_a_watch_of_no_bytes_is_unknown(length):
    assert derive_value("mov    %al,(%rdi)", WRITE, regs(rdi=0x2000), 0x2000, length) == NONE


# -- value_getter: derive_value_with worked out once per instruction, the same answers


@pytest.mark.parametrize(("text", "kind", "given", "address", "length", "expected"), CASES)
def test_value_getter_gives_what_derive_value_gives(text, kind, given, address, length, expected):
    getter = value_getter(text, kind, 8, address, length)
    assert getter(register_reader(regs(text, **given))) == expected


@pytest.mark.parametrize(("text", "kind", "given", "address", "length", "expected"), CASES_32)
def test_value_getter_in_a_32_bit_task(text, kind, given, address, length, expected):
    registers = regs(text, cs=0x23, ss=0x2B, **given)
    assert value_getter(text, kind, 4, address, length)(register_reader(registers)) == expected


# Plain moves (the getter's own plans) and a few others (derived), every operand form.
PLAIN_MOVES = [
    "mov    %al,0x2eb1(%rip)        # 0x5088 <area+8>", "mov    %ah,(%rdx)",
    "mov    %sil,-0x1(%rdi,%rdx,1)", "mov    %ecx,-0x4(%rdi,%rdx,4)", "movq   %rax,(%rax)",
    "mov    %rdx,%fs:0x28", "mov    %eax,%gs:(%rbx)", "movb   $0x5a,0x3(%rax)",
    "movw   $0x1234,(%rdi)", "movl   $0xffffffff,(%rdi,%riz,1)", "movq   $0x7fffffff,(%esi)",
    "mov    $0x1,(%rdi)", "movabs %rax,0x404040", "mov    %bx,(%bx,%si)", "movnti %ecx,(%rdi)",
    "movzbl 0x2ed6(%rip),%eax        # 0x5088 <area+8>", "movzwl (%rax),%eax",
    "movsbq -0x1(%rdi,%rdx,1),%rsi", "movslq (%rdi,%rsi,8),%rsi", "mov    (%rsi),%rsi",
    "mov    0x8(%rdi),%rdx", "mov    (%rdi,%rdx,2),%dx", "mov    %fs:0x10,%rax",
    "mov    %xmm0,(%rdi)", "vmovdqu %ymm0,(%rdi)", "mov    (%rdi),%es", "mov    %eax,%ebx",
    "mov    $0x5,%eax", "movzbl %al,%eax", "vpgatherdd %xmm2,(%rax,%xmm1,4),%xmm0",
    "add    %al,(%rdi)", "xchg   %eax,(%rdi)", "lock cmpxchg %edx,(%rdi)", "stos   %al,%es:(%rdi)",
    "push   %rax", "data16 mov %ax,(%rdi)", "rex.W mov %rax,(%rdi)",
]  # fmt: skip


@pytest.mark.parametrize("text", PLAIN_MOVES)
def test_value_getter_agrees_with_derive_value_on_random_registers(text):
    """Random register values (some registers missing), watches on and around the operand."""
    chance = random.Random(text)
    for _ in range(300):
        registers = {name: chance.getrandbits(64) for name in REGISTER_NAMES}
        base = chance.choice([0x2000, 0x5088, 0xFFFF_FFFF_FFFF_FFF8])
        for name in ("rdi", "rsi", "rax", "rdx", "rbx"):
            registers[name] = chance.choice([registers[name], base, chance.randrange(16)])
        for name in chance.sample(REGISTER_NAMES, chance.randrange(3)):
            del registers[name]
        registers["rip"] = 0x5088 - 0x2EB1 + chance.randrange(-8, 8)
        reg = register_reader(registers)
        address = base + chance.randrange(-4, 12)
        length = chance.choice([1, 2, 4, 8])
        for kind in (READ, WRITE, "bogus"):
            getter = value_getter(text, kind, 8, address, length)
            assert getter(reg) == derive_value_with(text, kind, reg, 8, address, length)
