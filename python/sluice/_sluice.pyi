"""Type stubs for the extension module behind ``sluice``."""

from os import PathLike
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import pyarrow as pa

Message = Mapping[str, Any]
"""A chat message in the wire shape: ``role``, ``content``, optionally
``toolCalls``/``tool_calls`` and ``toolCallId``/``tool_call_id``."""

StrPath = Union[str, "PathLike[str]"]

COUNTS_PER_THREAD: int

class Model:
    """A model profile ready to count and trim."""

    def __init__(
        self,
        name: str = "HCX-003",
        *,
        profiles: Optional[StrPath] = None,
        tokenizer: Optional[StrPath] = None,
        cache: int = ...,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def context_limit(self) -> int: ...
    @property
    def max_output(self) -> int: ...
    def count_text(self, text: str) -> int: ...
    def count(self, messages: Sequence[Message]) -> Dict[str, Any]: ...
    def trim(
        self, messages: Sequence[Message], max_tokens: int = 100, *, full_report: bool = False
    ) -> Dict[str, Any]: ...

def count(messages: Sequence[Message], model: Union[str, Model, None] = None) -> Dict[str, Any]: ...
def trim(
    messages: Sequence[Message],
    max_tokens: int = 100,
    model: Union[str, Model, None] = None,
    *,
    full_report: bool = False,
) -> Dict[str, Any]: ...

class Conversation:
    """A growing chat history, re-trimmed after every turn."""

    def __init__(
        self,
        messages: Optional[Sequence[Message]] = None,
        model: Union[str, Model, None] = None,
        *,
        full_report: bool = False,
    ) -> None: ...
    def append(self, message: Message) -> None: ...
    def extend(self, messages: Sequence[Message]) -> None: ...
    def pop(self) -> Message: ...
    @property
    def messages(self) -> List[Message]: ...
    def __len__(self) -> int: ...
    def trim(self, max_tokens: int = 100, *, forget_dropped: bool = False) -> Dict[str, Any]: ...

class Router:
    """A rule-based router version."""

    def __init__(
        self,
        router_id: str = "sample",
        version: Optional[int] = None,
        *,
        directory: Optional[StrPath] = None,
    ) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def domains(self) -> List[str]: ...
    def route(
        self,
        query: str,
        chat_history: Optional[Sequence[Union[str, Message]]] = None,
        *,
        explain: bool = False,
    ) -> Dict[str, Any]: ...

def trim_batch(
    batch: pa.RecordBatch,
    max_tokens: int,
    model: Union[str, Model],
    full_report: bool,
    threads: Optional[int],
) -> pa.RecordBatch: ...
def count_batch(batch: pa.RecordBatch, model: Union[str, Model], threads: Optional[int]) -> pa.RecordBatch: ...
def route_batch(batch: pa.RecordBatch, router: Router, threads: Optional[int]) -> pa.RecordBatch: ...
