"""A Pratt parser from tokens to the expression tree, with Druid's operator precedence and a nesting limit."""

from __future__ import annotations

from typing import Any, Optional

from druidflow.exceptions import SpecError
from druidflow.expressions.lexer import Token, tokenize
from druidflow.expressions.tree import (
    FUNCTIONS,
    ArrayLiteral,
    Binary,
    Call,
    Identifier,
    Lambda,
    Literal,
    Node,
    Unary,
)
from druidflow.expressions.values import DOUBLE, LONG, NULL, STRING

# Binary operators: (left binding power, right binding power); equal powers make ^ right-associative.
BINARY = {
    "||": (10, 11), "&&": (10, 11),
    "<": (20, 21), "<=": (20, 21), ">": (20, 21), ">=": (20, 21), "==": (20, 21), "!=": (20, 21),
    "+": (30, 31), "-": (30, 31),
    "*": (40, 41), "/": (40, 41), "%": (40, 41),
    "^": (50, 50),
}
UNARY_BP = 60
# How deep parentheses, unary operators, function arguments and right operands may nest. A chain of
# left-associative operators (``a + b + c + ...``, any length) does not nest: it is parsed and evaluated in a loop.
MAX_EXPRESSION_DEPTH = 100


class Syntax:
    """Turns expression text into a tree, raising SpecError at the first problem with its position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.lambda_ok = False  # set just before a call's first argument: the one place a lambda may stand

    def error(self, pos: int, reason: str) -> SpecError:
        return SpecError("", self.text, f"{reason} at position {pos}")

    # -- Pratt parser -----------------------------------------------------------------------------------------------

    def parse(self) -> Node:
        node = self.expression(0)
        tok = self.tokens[self.i]
        if tok.kind != "end":
            raise self.error(tok.pos, f"unexpected {self.describe(tok)}")
        return node

    def describe(self, tok: Token) -> str:
        return "end of expression" if tok.kind == "end" else repr(tok.text)

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.take()
        if tok.kind != "op" or tok.text != text:
            raise self.error(tok.pos, f"expected {text!r} but found {self.describe(tok)}")
        return tok

    def expression(self, min_bp: int) -> Node:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            tok = self.tokens[self.i]
            raise self.error(tok.pos, f"the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels")
        try:
            left = self.prefix()
            while True:
                tok = self.tokens[self.i]
                if tok.kind != "op" or tok.text not in BINARY:
                    return left
                lbp, rbp = BINARY[tok.text]
                if lbp < min_bp:
                    return left
                self.i += 1
                left = Binary(tok.pos, tok.text, left, self.expression(rbp))
        finally:
            self.depth -= 1

    def lambda_params(self) -> Optional[list[str]]:
        """The parameters when a lambda starts at the current token (``x ->`` or ``(x, y) ->``), else None."""
        toks, i = self.tokens, self.i
        if toks[i].kind == "ident" and not toks[i].text.startswith('"') and self.is_op(i + 1, "->"):
            return [toks[i].text]
        if not self.is_op(i, "("):
            return None
        names: list[str] = []
        j = i + 1
        while toks[j].kind == "ident" and not toks[j].text.startswith('"'):
            names.append(toks[j].text)
            j += 1
            if self.is_op(j, ","):
                j += 1
            elif not self.is_op(j, ")"):
                return None
        return names if self.is_op(j, ")") and self.is_op(j + 1, "->") else None

    def is_op(self, i: int, text: str) -> bool:
        return self.tokens[i].kind == "op" and self.tokens[i].text == text

    def lambda_(self, params: list[str]) -> Node:
        start = self.tokens[self.i]
        while not self.is_op(self.i, "->"):
            self.i += 1
        self.i += 1
        if len(set(params)) != len(params):
            raise self.error(start.pos, "a lambda's parameters must have different names")
        return Lambda(start.pos, tuple(params), self.expression(0))

    def array_literal(self, open_tok: Token, typed: Optional[str]) -> Node:
        values: list[Any] = []
        kinds: set[str] = set()
        if not self.is_op(self.i, "]"):
            while True:
                element = self.expression(0)
                if not isinstance(element, Literal):
                    raise self.error(element.pos, "an array literal holds only literal values (use array(...) for expressions)")
                values.append(element.value)
                if element.kind != NULL:
                    kinds.add(element.kind)
                tok = self.take()
                if tok.kind == "op" and tok.text == "]":
                    break
                if not (tok.kind == "op" and tok.text == ","):
                    raise self.error(tok.pos, f"expected ',' or ']' but found {self.describe(tok)}")
        else:
            self.take()
        if typed is not None:
            element_kind = typed
        elif STRING in kinds and len(kinds) > 1:
            raise self.error(open_tok.pos, "an array literal cannot mix strings and numbers")
        else:
            element_kind = STRING if not kinds or STRING in kinds else DOUBLE if DOUBLE in kinds else LONG
        try:
            cast = [None if v is None else {LONG: int, DOUBLE: float, STRING: str}[element_kind](v) for v in values]
        except (TypeError, ValueError):
            raise self.error(open_tok.pos, f"an array literal of {element_kind} holds a value of another type") from None
        return ArrayLiteral(open_tok.pos, tuple(cast), element_kind)

    def prefix(self) -> Node:
        lambda_ok, self.lambda_ok = self.lambda_ok, False
        params = self.lambda_params()
        if params is not None:
            if not lambda_ok:
                raise self.error(self.tokens[self.i].pos, "a lambda can only be the first argument of an apply function such as map()")
            return self.lambda_(params)
        tok = self.take()
        if tok.kind == "typed":
            return self.array_literal(self.expect("["), tok.value)
        if tok.kind == "op" and tok.text == "[":
            return self.array_literal(tok, None)
        if tok.kind == "number":
            if isinstance(tok.value, int):
                return Literal(tok.pos, tok.value, LONG)
            return Literal(tok.pos, tok.value, DOUBLE)
        if tok.kind == "string":
            return Literal(tok.pos, tok.value, STRING)
        if tok.kind == "ident":
            bare = not tok.text.startswith('"')
            nxt = self.tokens[self.i]
            if bare and nxt.kind == "op" and nxt.text == "(":
                return self.call(tok)
            if bare and tok.text == "null":
                return Literal(tok.pos, None, NULL)
            if bare and tok.text in ("NaN", "Infinity"):
                return Literal(tok.pos, float(tok.text.lower().replace("infinity", "inf")), DOUBLE)
            return Identifier(tok.pos, tok.value)
        if tok.kind == "op" and tok.text == "(":
            node = self.expression(0)
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text in ("-", "!"):
            nxt = self.tokens[self.i]
            if tok.text == "-" and nxt.kind == "number" and nxt.value == 2**63:
                self.i += 1
                return Literal(tok.pos, -(2**63), LONG)  # the one LONG literal written beyond the positive range
            operand = self.expression(UNARY_BP)
            if tok.text == "-" and isinstance(operand, Literal) and operand.kind in (LONG, DOUBLE):
                return Literal(tok.pos, -operand.value, operand.kind)
            return Unary(tok.pos, tok.text, operand)
        raise self.error(tok.pos, f"unexpected {self.describe(tok)}")

    def call(self, name_tok: Token) -> Node:
        self.expect("(")
        args: list[Node] = []
        if not (self.tokens[self.i].kind == "op" and self.tokens[self.i].text == ")"):
            while True:
                self.lambda_ok = not args
                args.append(self.expression(0))
                tok = self.take()
                if tok.kind == "op" and tok.text == ")":
                    break
                if not (tok.kind == "op" and tok.text == ","):
                    raise self.error(tok.pos, f"expected ',' or ')' but found {self.describe(tok)}")
        else:
            self.take()
        fn = FUNCTIONS.get(name_tok.text.lower())
        if fn is None:
            raise self.error(name_tok.pos, f"unknown function {name_tok.text!r}")
        node = Call(name_tok.pos, fn.name, tuple(args))
        fn.check(node, self)
        return node

