"""A compiled expression: parse once (cached), evaluate over RecordBatches or Tables."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from druidflow.exceptions import SpecError
from druidflow.expressions.columns import Batch
from druidflow.expressions.parser import Syntax
from druidflow.expressions.tree import Ctx, Node
from druidflow.expressions.values import ScalarExpected, Val, is_array, is_nested, truth


@dataclass(frozen=True)
class Expression:
    """A compiled Druid expression. ``evaluate`` is safe to call from several threads."""

    text: str
    tree: Node
    path: str = ""

    @property
    def required_columns(self) -> frozenset[str]:
        """The columns the expression reads."""
        return frozenset(self.tree.columns())

    def evaluate(self, batch: Batch) -> pa.Array:
        """The expression's value for every row: int64, float64 or string (all-null string if untyped), or a list
        of those for an array."""
        ctx = Ctx(batch, self)
        v = self._value(ctx)
        if is_nested(v.kind):
            # Druid evaluates arrays of arrays inside an expression, but a column (a dimension, a metric's input)
            # holds a scalar or one level of values.
            raise ctx.error(None, f"gives {v.kind}: an array of arrays cannot be a column value; take one array of it "
                                  "(array_offset(), array_ordinal()) or fold it to a scalar")
        return ctx.array(v)

    def evaluate_truth(self, batch: Batch) -> pa.Array:
        """The value as Druid's truth (numbers > 0, strings equal to 'true'); null where the value is null."""
        ctx = Ctx(batch, self)
        v = self._value(ctx)
        if is_array(v.kind):
            raise ctx.error(None, f"gives {v.kind}, and a filter needs a scalar (array_contains() or any() test arrays)")
        data = truth(v)
        if isinstance(data, pa.Scalar):
            return pa.repeat(data, ctx.n) if data.is_valid else pa.nulls(ctx.n, pa.bool_())
        return data

    def _value(self, ctx: Ctx) -> Val:
        try:
            return self.tree.evaluate(ctx)
        except ScalarExpected as exc:
            raise ctx.error(None, f"does not accept {exc.kind} values here") from None
        except SpecError:
            raise
        except (pa.ArrowInvalid, ValueError) as exc:
            raise SpecError(self.path, self.text, f"cannot be evaluated: {exc}") from None

    def __str__(self) -> str:
        return self.text


def compile_expression(text: str, path: str = "") -> Expression:
    """Parse a Druid expression; a SpecError at ``path`` names the expression and the position of any problem."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(path, text, "an expression must be a non-empty string")
    try:
        tree = _parse(text)
    except SpecError as exc:
        raise SpecError(path, text, exc.reason) from None
    return Expression(text, tree, path)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Node:
    return Syntax(text).parse()

