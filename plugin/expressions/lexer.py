"""Expression text as tokens: numbers, strings, identifiers (bare or double-quoted) and operators."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from druidflow.exceptions import SpecError

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<qident>"(?:[^"\\]|\\.)*")
  | (?P<typed>(?:ARRAY)?<(?:STRING|LONG|DOUBLE)>(?=\s*\[))
  | (?P<ident>[_$a-zA-Z][_$a-zA-Z0-9]*)
  | (?P<op>->|<=|>=|==|!=|&&|\|\||[-+*/%^<>!(),\[\]])
    """,
    re.VERBOSE,
)

ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

@dataclass(frozen=True)
class Token:
    kind: str  # number | string | ident | typed (``<LONG>`` before ``[``) | op | end
    text: str
    pos: int
    value: Any = None



def _error(text: str, pos: int, reason: str) -> SpecError:
    return SpecError("", text, f"{reason} at position {pos}")


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; SpecError with the position of a bad one."""
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            ch = text[pos]
            if ch in "'\"":
                raise _error(text, pos, f"unterminated {'string literal' if ch == chr(39) else 'quoted identifier'}")
            if ch in "&|~":
                raise _error(text, pos, f"unsupported operator {ch!r} (bitwise operators are not supported)")
            raise _error(text, pos, f"unexpected character {ch!r}")
        kind = m.lastgroup
        tok = m.group()
        if kind == "number":
            value: Any = float(tok) if any(c in tok for c in ".eE") else int(tok)
            out.append(Token("number", tok, pos, value))
        elif kind == "string":
            out.append(Token("string", tok, pos, _unescape(text, tok[1:-1], pos + 1)))
        elif kind == "qident":
            out.append(Token("ident", tok, pos, _unescape(text, tok[1:-1], pos + 1)))
        elif kind == "ident":
            out.append(Token("ident", tok, pos, tok))
        elif kind == "typed":
            out.append(Token("typed", tok, pos, tok[tok.index("<") + 1 : -1]))
        elif kind == "op":
            out.append(Token("op", tok, pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out

def _unescape(text: str, body: str, start: int) -> str:
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in ESCAPES:
            out.append(ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise _error(text, start + i, f"invalid escape '\\{nxt}'")
    return "".join(out)

