"""The read-only check on address expressions, without gdb."""

from __future__ import annotations

import re

import pytest

from gdb_qznusnih.address_expression import (
    MAX_LENGTH,
    ExpressionError,
    check_read_only,
    shown,
)


@pytest.mark.parametrize(
    "expression",
    [
        "&buf[3]",
        "0x55d0c3a0b04b",
        "&s.field",
        "(char*)p+1",
        "$rsp+8",
        "$rsp + -8",
        "a - -b",
        "&area[i == 2]",
        "&area[i != 2]",
        "&area[i <= 2]",
        "&area[i >= 2]",
        "&area[1 << 2]",
        "p->next",
        "&'file.c'::var",
        "*(char **)$_siginfo._sifields._sigfault.si_addr",
        '&buf[sizeof("a=b")]',  # '=' inside a string literal
        "&buf['=']",
        "&buf['\\'' + 1]",
        "(void (*)(int)) 0x1234",
        "&énergie",  # printable unicode: a C identifier may hold it
        "&$1",
        "$$2",
    ],
)
def test_reading_expressions_pass(expression):
    check_read_only(expression)


@pytest.mark.parametrize(
    "expression, operator",
    [
        ("buf[0]=65", "="),
        ("buf[0] == 1 = 2", "="),
        ("buf[0]===1", "="),
        ("buf[0]++", "++"),
        ("++buf[0]", "++"),
        ("buf[0]--", "--"),
        ("a--b", "--"),
        ("buf[0]+=1", "+="),
        ("buf[0]-=1", "-="),
        ("buf[0]*=2", "*="),
        ("buf[0]/=2", "/="),
        ("buf[0]%=2", "%="),
        ("buf[0]&=2", "&="),
        ("buf[0]|=2", "|="),
        ("buf[0]^=2", "^="),
        ("buf[0]<<=1", "<<="),
        ("buf[0]>>=1", ">>="),
        ("buf[0] := 1", ":="),
        ("$rax=1", "="),
        ("$_siginfo.si_signo=3", "="),
        ("$mine = 5", "="),
        ('&buf[sizeof("x")] = 0', "="),  # after a string literal
        ("'\\'' = 1", "="),
    ],
)
def test_writing_operators_are_refused(expression, operator):
    with pytest.raises(ExpressionError, match=f"assigns with '{re.escape(operator)}'"):
        check_read_only(expression)


@pytest.mark.parametrize(
    "expression, function",
    [
        ('$_shell("touch /tmp/x")', "$_shell"),
        ("$_as_string (x)", "$_as_string"),
        ("$rsp(1)", "$rsp"),
        ('&buf[$_strlen("ab")]', "$_strlen"),
    ],
)
def test_calls_of_gdb_functions_are_refused(expression, function):
    with pytest.raises(ExpressionError, match=f"calls \\{function}\\(\\)"):
        check_read_only(expression)


@pytest.mark.parametrize("character", ["\u202e", "\u2028", "\x9b", "\u200b", "\x7f", "\t"])
def test_unprintable_characters_are_refused(character):
    with pytest.raises(ExpressionError, match=f"U\\+{ord(character):04X}"):
        check_read_only(f"&buf{character}[0]")


def test_a_huge_expression_is_refused_with_its_length():
    with pytest.raises(ExpressionError, match="100,000 characters long"):
        check_read_only("1+" * 50_000)
    deepest = "(" * 498 + "1" + ")" * 498 + "+00"
    assert len(deepest) == MAX_LENGTH
    check_read_only(deepest)  # accepted
    with pytest.raises(ExpressionError, match="1,001 characters long"):
        check_read_only(deepest + "0")


def test_messages_show_a_long_expression_cut_short():
    assert shown("&buf[3]") == "'&buf[3]'"
    long = shown("a" * 500)
    assert len(long) == 62 and long.endswith("…'")
    with pytest.raises(ExpressionError) as caught:
        check_read_only("x" * 900 + "=1")
    assert len(str(caught.value)) < 200
