"""Input readers: an input source in an input format, read as a bounded-memory stream of Arrow batches.

>>> reader = open_input(LocalInputSource(base_dir="data", filter="*.json"), JsonInputFormat())
>>> for batch in reader.batches():
...     batch.data, batch.unparseable, batch.bytes_read, batch.source
"""

from __future__ import annotations

from druidflow.inputs.batch import InputBatch, ParseFailure
from druidflow.inputs.reader import DEFAULT_BATCH_ROWS, InputReader, open_input
from druidflow.inputs.sources import InputObject

__all__ = ["DEFAULT_BATCH_ROWS", "InputBatch", "InputObject", "InputReader", "ParseFailure", "open_input"]
