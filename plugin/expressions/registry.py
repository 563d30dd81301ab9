"""The function table: each function's arity, which arguments must be literals, and compile-time checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from druidflow.exceptions import SpecError
from druidflow.expressions.tree import FUNCTIONS, Call, Ctx, Lambda, Literal
from druidflow.expressions.values import NULL, Val

if TYPE_CHECKING:
    from druidflow.expressions.parser import Syntax


Impl = Callable[[Call, Ctx], Val]


@dataclass(frozen=True)
class Function:
    name: str
    impl: Impl
    min_args: int
    max_args: Optional[int]
    literals: tuple[int, ...]
    validate: Optional[Callable[[Call], None]]
    # apply functions: how many parameters the lambda (the first argument) takes, given the number of arguments
    lambda_params: Optional[Callable[[int], int]] = None

    def check(self, call: Call, syntax: Syntax) -> None:
        n = len(call.args)
        if n < self.min_args or (self.max_args is not None and n > self.max_args):
            want = (
                f"{self.min_args}" if self.min_args == self.max_args
                else f"at least {self.min_args}" if self.max_args is None
                else f"{self.min_args} to {self.max_args}"
            )
            raise syntax.error(call.pos, f"function {self.name!r} takes {want} argument{'s' if want != '1' else ''}, not {n}")
        if self.lambda_params is not None:
            first = call.args[0]
            if not isinstance(first, Lambda):
                raise syntax.error(first.pos, f"the first argument of {self.name!r} must be a lambda such as (x) -> x + 1")
            want_params = self.lambda_params(n)
            if len(first.params) != want_params:
                raise syntax.error(first.pos, f"the lambda of {self.name!r} takes {len(first.params)} argument"
                                   f"{'' if len(first.params) == 1 else 's'} but {want_params} {'is' if want_params == 1 else 'are'} passed to it")
        elif n and isinstance(call.args[0], Lambda):
            raise syntax.error(call.args[0].pos, f"{self.name!r} does not take a lambda; apply functions such as map() do")
        for i in self.literals:
            if i < n and not isinstance(call.args[i], Literal):
                raise syntax.error(call.args[i].pos, f"argument {i + 1} of {self.name!r} must be a literal")
        if self.validate is not None:
            try:
                self.validate(call)
            except SpecError as exc:
                raise syntax.error(call.pos, f"{self.name}: {exc.reason}") from None


def function(name: str, min_args: int, max_args: Optional[int] = -1, literals: tuple[int, ...] = (),
              validate: Optional[Callable[[Call], None]] = None,
              lambda_params: Optional[Callable[[int], int]] = None) -> Callable[[Impl], Impl]:
    def register(impl: Impl) -> Impl:
        FUNCTIONS[name] = Function(name, impl, min_args, min_args if max_args == -1 else max_args, literals, validate, lambda_params)
        return impl

    return register


def literal_check(i: int, kinds: tuple[str, ...], what: str, optional: bool = True) -> Callable[[Call], None]:
    def check(call: Call) -> None:
        if i < len(call.args):
            lit = call.args[i]
            assert isinstance(lit, Literal)  # Function.check verified it before the validators run
            if lit.kind not in kinds and not (optional and lit.kind == NULL):
                raise SpecError("", lit.value, f"argument {i + 1} must be {what}")

    return check


def checks(*checks: Callable[[Call], None]) -> Callable[[Call], None]:
    def check(call: Call) -> None:
        for c in checks:
            c(call)

    return check

