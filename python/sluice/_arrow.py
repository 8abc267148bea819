"""Batch functions over Arrow tables and record batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, TypeVar, Union

from . import _sluice

if TYPE_CHECKING:
    import pyarrow as pa

    ArrowData = TypeVar("ArrowData", pa.Table, pa.RecordBatch)
else:
    ArrowData = TypeVar("ArrowData")

ModelArg = Union[str, _sluice.Model]


def _map(data: ArrowData, process: Callable[["pa.RecordBatch"], "pa.RecordBatch"]) -> ArrowData:
    """Applies ``process`` to a record batch, or to each batch of a table."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatch):
        return process(data)
    if isinstance(data, pa.Table):
        batches = data.to_batches() or [pa.RecordBatch.from_pylist([], schema=data.schema)]
        return pa.Table.from_batches([process(b) for b in batches])
    raise TypeError(f"expected a pyarrow.Table or pyarrow.RecordBatch, got {type(data).__name__}")


def trim_arrow(
    data: ArrowData,
    max_tokens: int = 100,
    model: ModelArg = "HCX-003",
    *,
    full_report: bool = False,
    threads: Optional[int] = None,
) -> ArrowData:
    """Trims every row of an Arrow table or record batch, as ``sluice trim --jsonl``
    does with every line, on all cores (``threads`` to use fewer).

    ``data`` has a ``messages`` column (a list of structs with ``role`` and
    ``content`` strings, optionally ``tool_call_id`` and ``tool_calls``: a list
    of structs with ``id`` and ``function``, a struct of ``name`` and
    ``arguments``, a JSON string) and optionally ``max_tokens``
    (integers; null for the default) and ``model`` (strings) columns. The result
    has the same columns, ``messages`` holding only the kept messages, plus a
    ``report`` struct column (the report ``sluice trim`` prints) and an ``error``
    struct column (``code``, ``message``). A bad row gets an error (its
    ``messages`` and ``report`` are null) while the others go on.
    """
    return _map(data, lambda b: _sluice.trim_batch(b, max_tokens, model, full_report, threads))


def count_arrow(
    data: ArrowData,
    model: ModelArg = "HCX-003",
    *,
    threads: Optional[int] = None,
) -> ArrowData:
    """Counts every row's messages, as ``sluice count --jsonl`` does, on all cores.

    ``data`` is as for :func:`trim_arrow`. The result has the same columns plus
    ``counts`` (per message), ``reply`` (the reply prefix's tokens), ``total`` and
    ``error``.
    """
    return _map(data, lambda b: _sluice.count_batch(b, model, threads))


def route_arrow(
    data: ArrowData,
    router: Optional[_sluice.Router] = None,
    *,
    threads: Optional[int] = None,
) -> ArrowData:
    """Routes every row, as ``sluice route --jsonl`` does, on all cores.

    ``data`` has a ``query`` string column and optionally ``chatHistory`` (or
    ``chat_history``): a list of message structs. The result has the same
    columns plus ``domain``, ``blockedContent``, ``safety`` and ``usage`` (the
    router API's result, as struct columns) and ``error``. ``router`` defaults to
    the sample router.
    """
    chosen = router if router is not None else _sluice.Router()
    return _map(data, lambda b: _sluice.route_batch(b, chosen, threads))
