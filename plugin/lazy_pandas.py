"""Keep pyarrow from importing pandas on Druidflow's behalf.

pyarrow probes for pandas the first time it converts numpy arrays or Python values (``pa.array``, ``pa.scalar``),
and importing pandas costs 0.1-0.3 s: most of a small ``druidflow run``. Druidflow never uses pandas, so an import
of pandas whose nearest caller (past importlib and pyarrow's own Python code) is a Druidflow module is refused;
pyarrow then treats pandas as absent for its implicit checks. Anyone else's ``import pandas`` (an Airflow task, a
user's code in the same process) goes through, and pyarrow's explicit pandas APIs (``to_pandas``, ``from_pandas``)
import it again when called.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Optional

_SKIPPED_PREFIXES = ("<frozen importlib", "<frozen zipimport")


class _RefusePandasForDruidflow(MetaPathFinder):
    """A meta path finder that refuses ``pandas`` when Druidflow's code is what asked for it (through pyarrow)."""

    def find_spec(self, name: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None) -> Optional[ModuleSpec]:
        if name != "pandas" or "pandas" in sys.modules:
            return None
        if _asked_by_druidflow(sys._getframe(1)):
            raise ImportError("pandas is not imported on Druidflow's behalf (druidflow.lazy_pandas)")
        return None


def _asked_by_druidflow(frame: Optional[FrameType]) -> bool:
    while frame is not None:
        filename = frame.f_code.co_filename
        module = str(frame.f_globals.get("__name__", ""))
        if not (filename.startswith(_SKIPPED_PREFIXES) or module == "pyarrow" or module.startswith("pyarrow.") or frame.f_globals is globals()):
            return module == "druidflow" or module.startswith("druidflow.")
        frame = frame.f_back
    return False


def install() -> None:
    """Install the finder once per process (first in ``sys.meta_path``)."""
    if not any(isinstance(f, _RefusePandasForDruidflow) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefusePandasForDruidflow())
