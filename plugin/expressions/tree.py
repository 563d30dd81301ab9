"""The expression tree (literals, columns, operators, calls) and its column-at-a-time evaluation context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError
from druidflow.expressions.columns import (
    I64_MAX,
    I64_MIN,
    Batch,
    epoch_millis,
    read_column,
)
from druidflow.expressions.values import (
    ARRAY_OF,
    ARROW_TYPE,
    DOUBLE,
    LONG,
    NULL,
    STRING,
    Data,
    ScalarExpected,
    Val,
    as_double,
    as_kind,
    bool_to_long,
    is_array,
    null_of,
    or_masks,
    to_numpy,
    truth,
)

if TYPE_CHECKING:
    from druidflow.expressions.compiled import Expression
    from druidflow.expressions.registry import Function


# The function table, filled by the function modules as they are imported (see druidflow.expressions.registry).
FUNCTIONS: dict[str, Function] = {}
COMPARISONS = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal, "==": pc.equal, "!=": pc.not_equal}


class Node:
    pos: int

    def evaluate(self, ctx: Ctx) -> Val:
        raise NotImplementedError

    def columns(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Literal(Node):
    pos: int
    value: Any
    kind: str

    def __post_init__(self) -> None:
        if self.kind == LONG and not (I64_MIN <= self.value <= I64_MAX):
            raise SpecError("", self.value, f"number out of the LONG range at position {self.pos}")

    def evaluate(self, ctx: Ctx) -> Val:
        return Val(pa.scalar(self.value, ARROW_TYPE[self.kind]), self.kind)


@dataclass(frozen=True)
class Identifier(Node):
    pos: int
    name: str

    def evaluate(self, ctx: Ctx) -> Val:
        return ctx.column(self.name)

    def columns(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class Unary(Node):
    pos: int
    op: str
    operand: Node

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, ctx: Ctx) -> Val:
        v = self.operand.evaluate(ctx)
        if is_array(v.kind):
            raise ctx.error(self, f"operator {self.op!r} does not accept {v.kind} values")
        if v.kind == NULL:
            return null_of(LONG) if self.op == "!" else v
        if self.op == "!":
            return bool_to_long(pc.invert(truth(v)))
        if v.kind == STRING:
            v = Val(as_double(v), DOUBLE)
        return Val(pc.negate(v.data), v.kind)


@dataclass(frozen=True)
class Binary(Node):
    pos: int
    op: str
    left: Node
    right: Node

    def spine(self) -> tuple[Node, list[Binary]]:
        """The leftmost operand of a left-deep chain and the chain's operators, innermost first (no recursion)."""
        chain: list[Binary] = []
        node: Node = self
        while isinstance(node, Binary):
            chain.append(node)
            node = node.left
        chain.reverse()
        return node, chain

    def columns(self) -> set[str]:
        first, chain = self.spine()
        out = set(first.columns())
        for b in chain:
            out |= b.right.columns()
        return out

    def evaluate(self, ctx: Ctx) -> Val:
        first, chain = self.spine()
        acc = first.evaluate(ctx)
        for b in chain:
            acc = b.combine(acc, b.right.evaluate(ctx), ctx)
        return acc

    def combine(self, a: Val, b: Val, ctx: Ctx) -> Val:
        for v in (a, b):
            if is_array(v.kind):
                raise ctx.error(self, f"operator {self.op!r} does not accept {v.kind} values")
        if self.op in ("&&", "||"):
            logic = pc.and_kleene if self.op == "&&" else pc.or_kleene
            return bool_to_long(logic(truth(a), truth(b)))
        if self.op in COMPARISONS:
            return compare(self.op, a, b)
        return self._arithmetic(a, b, ctx)

    def _arithmetic(self, a: Val, b: Val, ctx: Ctx) -> Val:
        op = self.op
        if a.kind == STRING and b.kind == STRING:
            if op == "+":
                return Val(pc.binary_join_element_wise(a.data, b.data, ""), STRING)
            raise ctx.error(self, f"operator {op!r} is not supported on two strings")
        if NULL in (a.kind, b.kind):
            other = b.kind if a.kind == NULL else a.kind
            if other == NULL:
                return null_of(NULL)
            return null_of(STRING if (other == STRING and op == "+") else LONG if other == LONG else DOUBLE)
        if a.kind == LONG and b.kind == LONG:
            return Val(_long_op(op, a.data, b.data, ctx.n), LONG)
        return Val(_double_op(op, as_double(a), as_double(b), ctx.n), DOUBLE)


def compare(op: str, a: Val, b: Val) -> Val:
    if NULL in (a.kind, b.kind):
        return null_of(LONG)
    if a.kind == STRING and b.kind == STRING:
        return bool_to_long(COMPARISONS[op](a.data, b.data))
    if a.kind == LONG and b.kind == LONG:
        return bool_to_long(COMPARISONS[op](a.data, b.data))
    return bool_to_long(COMPARISONS[op](as_double(a), as_double(b)))


def _long_op(op: str, x: Data, y: Data, n: int) -> Data:
    if op == "+":
        return pc.add(x, y)
    if op == "-":
        return pc.subtract(x, y)
    if op == "*":
        return pc.multiply(x, y)
    if op == "/":
        return pc.divide(x, _nonzero(y))
    if op == "^":
        ok = pc.greater_equal(y, 0)
        return pc.power(x, pc.if_else(ok, y, pa.scalar(None, pa.int64())))
    # % : Java's remainder has the dividend's sign, like C's fmod
    if isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar):
        n = 1
    xv, xm = to_numpy(x, n, np.int64)
    yv, ym = to_numpy(y, n, np.int64)
    zero = yv == 0
    out = np.fmod(xv, np.where(zero, 1, yv))
    result = pa.array(out, type=pa.int64(), mask=or_masks(xm, ym, zero))
    return result[0] if n == 1 and isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar) else result


def _nonzero(y: Data) -> Data:
    return pc.if_else(pc.equal(y, 0), pa.scalar(None, pa.int64()), y)


def _double_op(op: str, x: Data, y: Data, n: int) -> Data:
    if op == "+":
        return pc.add(x, y)
    if op == "-":
        return pc.subtract(x, y)
    if op == "*":
        return pc.multiply(x, y)
    if op == "/":
        return pc.divide(x, y)
    if op == "^":
        return pc.power(x, y)
    scalar = isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar)
    m = 1 if scalar else n
    xv, xm = to_numpy(x, m, np.float64)
    yv, ym = to_numpy(y, m, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.fmod(xv, yv)
    result = pa.array(out, type=pa.float64(), mask=or_masks(xm, ym))
    return result[0] if scalar else result


@dataclass(frozen=True)
class Call(Node):
    pos: int
    name: str
    args: tuple[Node, ...]

    def columns(self) -> set[str]:
        out: set[str] = set()
        for a in self.args:
            out |= a.columns()
        return out

    def evaluate(self, ctx: Ctx) -> Val:
        try:
            return FUNCTIONS[self.name].impl(self, ctx)
        except ScalarExpected as exc:
            raise ctx.error(self, f"function {self.name!r} does not accept {exc.kind} arguments") from None
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            # e.g. a set or sort over elements that are themselves arrays
            raise ctx.error(self, f"function {self.name!r} does not support these argument types ({exc})") from None

    def literal(self, i: int) -> Any:
        node = self.args[i]
        assert isinstance(node, Literal)  # checked at compile time
        return node.value


@dataclass(frozen=True)
class ArrayLiteral(Node):
    """``[1, 2, 3]``, ``['a', null]``, ``<LONG>[]``: literal elements of one element kind."""

    pos: int
    values: tuple[Any, ...]
    element: str

    def evaluate(self, ctx: Ctx) -> Val:
        m = len(self.values)
        items = pa.array(list(self.values), ARROW_TYPE[self.element]).take(pa.array(np.tile(np.arange(m), ctx.n)))
        offsets = pa.array(np.arange(ctx.n + 1, dtype=np.int32) * m, pa.int32())
        return Val(pa.ListArray.from_arrays(offsets, items), ARRAY_OF[self.element])


@dataclass(frozen=True)
class Lambda(Node):
    """``(x, y) -> body``: only the first argument of an apply function (checked by the parser)."""

    pos: int
    params: tuple[str, ...]
    body: Node

    def columns(self) -> set[str]:
        return self.body.columns() - set(self.params)

    def evaluate(self, ctx: Ctx) -> Val:
        raise ctx.error(self, "a lambda can only be the first argument of an apply function")


def from_arrow(arr: pa.Array, name: str, ctx: Ctx) -> Val:
    t = arr.type
    if pa.types.is_dictionary(t):
        return from_arrow(arr.dictionary_decode(), name, ctx)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return Val(arr if pa.types.is_string(t) else pc.cast(arr, pa.string()), STRING)
    if pa.types.is_integer(t):
        return Val(pc.cast(arr, pa.int64()) if t != pa.int64() else arr, LONG)
    if pa.types.is_boolean(t):
        return Val(pc.cast(arr, pa.int64()), LONG)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return Val(pc.cast(arr, pa.float64()) if t != pa.float64() else arr, DOUBLE)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return Val(epoch_millis(arr), LONG)
    if pa.types.is_null(t):
        return null_of(NULL)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return Val(pc.cast(arr, pa.string()), STRING)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # A multi-value column is an array (Druid's row transforms see a list value as an ARRAY)
        values = pc.list_flatten(arr)
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_struct(values.type):
            raise ctx.error(None, f"column {name!r} has type {t}; expressions read only arrays of scalars")
        element = from_arrow(values, name, ctx)
        kind = element.kind if element.kind != NULL else STRING
        items = ctx_array(element, kind, len(values))
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        return Val(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, mask=None if mask is None else pa.array(mask)), ARRAY_OF[kind])
    raise ctx.error(None, f"column {name!r} has type {t}, which expressions cannot read")


class Ctx:
    def __init__(self, batch: Batch, expression: Expression) -> None:
        self.batch = batch
        self.n = batch.num_rows
        self.expression = expression
        self._columns: dict[str, Val] = {}

    def column(self, name: str) -> Val:
        v = self._columns.get(name)
        if v is None:
            arr = read_column(self.batch, name)
            v = null_of(NULL) if arr is None else from_arrow(arr, name, self)
            self._columns[name] = v
        return v

    def error(self, node: Optional[Node], reason: str) -> SpecError:
        where = f" at position {node.pos}" if node is not None else ""
        return SpecError(self.expression.path, self.expression.text, reason + where)

    def array(self, v: Val, kind: Optional[str] = None) -> pa.Array:
        """``v`` as a full-length Arrow array of ``kind`` (default its own)."""
        return ctx_array(v, kind or v.kind, self.n)


def ctx_array(v: Val, kind: str, n: int) -> pa.Array:
    """``v`` as an Arrow array of ``n`` rows of ``kind`` (an untyped null becomes strings)."""
    if v.kind == NULL:
        return pa.nulls(n, ARROW_TYPE[kind] if kind != NULL else pa.string())
    data = as_kind(v, kind)
    if isinstance(data, pa.Scalar):
        return pa.repeat(data, n) if data.is_valid else pa.nulls(n, ARROW_TYPE[kind])
    return data

