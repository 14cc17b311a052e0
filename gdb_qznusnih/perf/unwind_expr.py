"""A DWARF expression evaluator for the expressions CFI uses (DW_CFA_def_cfa_expression,
DW_CFA_expression, DW_CFA_val_expression).

Supported: literals and constants, DW_OP_breg0..31 / bregx (register + offset), deref and
deref_size, the stack operations, arithmetic, logic, shifts, comparisons, skip and bra.  That
covers glibc's PLT (`breg7 8; breg16 0; lit15; and; lit11; ge; lit3; shl; plus`), its signal
trampoline (`breg7 N; deref`), and gcc's realigned frames (`breg6 -8; deref`).  Anything else
(DW_OP_addr, regN locations, TLS, entry values) raises UnsupportedExpression.

The expression comes from the target's files, so the number of steps and the stack depth are
bounded: a `bra` loop ends with UnsupportedExpression instead of hanging the consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

MASK = (1 << 64) - 1
MAX_STEPS = 1000
MAX_DEPTH = 64


class UnsupportedExpression(ValueError):
    """An operation this evaluator does not do, or an expression that misbehaves."""


class UnknownValue(LookupError):
    """A register or memory word the expression needs is not in the sample."""


def read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def read_sleb(data: bytes, pos: int) -> tuple[int, int]:
    value, end = read_uleb(data, pos)
    if data[end - 1] & 0x40:  # the last byte's top bit: the sign
        value -= 1 << 7 * (end - pos)
    return value, end


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


_CONSTANTS = {  # opcode: (size, signed)
    0x08: (1, False),
    0x09: (1, True),
    0x0A: (2, False),
    0x0B: (2, True),
    0x0C: (4, False),
    0x0D: (4, True),
    0x0E: (8, False),
    0x0F: (8, True),
}


def _divide_by_zero() -> int:
    raise UnsupportedExpression("division by zero")


def _divide(left: int, right: int) -> int:
    """DW_OP_div: signed, rounding toward zero (Python's // rounds down)."""
    if not right:
        _divide_by_zero()
    quotient = abs(left) // abs(right)
    return quotient if (left < 0) == (right < 0) else -quotient


_BINARY = {
    0x1A: lambda a, b: a & b,
    0x1C: lambda a, b: a - b,
    0x1B: lambda a, b: _divide(_signed(a), _signed(b)),
    0x1D: lambda a, b: a % b if b else _divide_by_zero(),
    0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b,
    0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b if b < 64 else 0,
    0x25: lambda a, b: a >> b if b < 64 else 0,
    0x26: lambda a, b: _signed(a) >> min(b, 63),
    0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(_signed(a) == _signed(b)),
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),
    0x2E: lambda a, b: int(_signed(a) != _signed(b)),
}


def evaluate(
    expression: bytes,
    registers: Sequence[int | None],
    read_word: Callable[[int, int], int | None],
    initial: Sequence[int] = (),
) -> int:
    """The value an expression leaves on top of its stack.

    registers: by DWARF number (None: unknown); read_word(address, size): memory or None;
    initial: values pushed first (the CFA, for DW_CFA_expression rules).
    """
    stack = [value & MASK for value in initial]
    pos = steps = 0
    while pos < len(expression):
        steps += 1
        if steps > MAX_STEPS or len(stack) > MAX_DEPTH:
            raise UnsupportedExpression("expression too long or too deep")
        op = expression[pos]
        pos += 1
        try:
            pos = _step(op, expression, pos, stack, registers, read_word)
        except IndexError:
            raise UnsupportedExpression(f"malformed expression at op {op:#x}") from None
    if not stack:
        raise UnsupportedExpression("expression left nothing on its stack")
    return stack[-1]


def _register(registers: Sequence[int | None], number: int) -> int:
    value = registers[number] if number < len(registers) else None
    if value is None:
        raise UnknownValue(f"register {number}")
    return value


def _step(op, expression, pos, stack, registers, read_word) -> int:
    """Run the operation `op` whose operands start at pos; return the next position."""
    if 0x30 <= op <= 0x4F:  # DW_OP_lit0..31
        stack.append(op - 0x30)
    elif 0x70 <= op <= 0x8F or op == 0x92:  # DW_OP_breg0..31, bregx
        number = op - 0x70
        if op == 0x92:
            number, pos = read_uleb(expression, pos)
        offset, pos = read_sleb(expression, pos)
        stack.append((_register(registers, number) + offset) & MASK)
    elif op in _BINARY:
        right, left = stack.pop(), stack.pop()
        stack.append(_BINARY[op](left, right) & MASK)
    elif op in _CONSTANTS:
        size, signed = _CONSTANTS[op]
        if pos + size > len(expression):
            raise IndexError
        stack.append(int.from_bytes(expression[pos : pos + size], "little", signed=signed) & MASK)
        pos += size
    elif op in (0x10, 0x11, 0x23):  # DW_OP_constu, consts, plus_uconst
        value, pos = (read_sleb if op == 0x11 else read_uleb)(expression, pos)
        stack.append(((stack.pop() if op == 0x23 else 0) + value) & MASK)
    elif op in (0x06, 0x94):  # DW_OP_deref, deref_size
        size = 8
        if op == 0x94:
            size, pos = expression[pos], pos + 1
        value = read_word(stack.pop(), size)
        if value is None:
            raise UnknownValue("memory")
        stack.append(value)
    elif op in (0x2F, 0x28):  # DW_OP_skip, bra
        jump = int.from_bytes(expression[pos : pos + 2], "little", signed=True)
        pos += 2
        if op == 0x2F or stack.pop():
            pos += jump
        if not 0 <= pos <= len(expression):
            raise UnsupportedExpression("branch out of the expression")
    else:
        _stack_op(op, expression, pos, stack)
        pos += 1 if op == 0x15 else 0
    return pos


def _stack_op(op: int, expression: bytes, pos: int, stack: list[int]) -> None:
    if op == 0x12:  # dup
        stack.append(stack[-1])
    elif op == 0x13:  # drop
        stack.pop()
    elif op == 0x14:  # over
        stack.append(stack[-2])
    elif op == 0x15:  # pick
        stack.append(stack[-1 - expression[pos]])
    elif op == 0x16:  # swap
        stack[-1], stack[-2] = stack[-2], stack[-1]
    elif op == 0x17:  # rot
        stack[-1], stack[-2], stack[-3] = stack[-3], stack[-1], stack[-2]
    elif op == 0x19:  # abs
        stack.append(abs(_signed(stack.pop())) & MASK)
    elif op == 0x1F:  # neg
        stack.append(-stack.pop() & MASK)
    elif op == 0x20:  # not
        stack.append(~stack.pop() & MASK)
    elif op == 0x96:  # nop
        pass
    else:
        raise UnsupportedExpression(f"DWARF operation {op:#x} is not supported in CFI")
