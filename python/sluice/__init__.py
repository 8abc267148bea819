"""sluice: deterministic token counting, sliding-window trimming and routing for
chat-model plumbing, over sluice's Rust engine.

Messages are dicts in the wire shape (``{"role": "user", "content": "..."}``);
results are the objects the ``sluice`` command prints. Errors are
:class:`SluiceError` subclasses carrying the API status codes.

>>> import sluice
>>> out = sluice.trim([{"role": "user", "content": "hi"}], max_tokens=100)
>>> out["report"]["tokensAfter"]
9
"""

from ._arrow import count_arrow, route_arrow, trim_arrow
from ._sluice import COUNTS_PER_THREAD, Conversation, Model, Router, count, trim
from .errors import (
    ContextLengthExceededError,
    EmptyQueryError,
    InvalidParameterError,
    InvalidRouterError,
    LoadError,
    RouterNotFoundError,
    SluiceError,
    TokenLimitExceededError,
    UnknownModelError,
)

__all__ = [
    "COUNTS_PER_THREAD",
    "Conversation",
    "Model",
    "Router",
    "count",
    "trim",
    "count_arrow",
    "trim_arrow",
    "route_arrow",
    "SluiceError",
    "InvalidParameterError",
    "ContextLengthExceededError",
    "EmptyQueryError",
    "UnknownModelError",
    "RouterNotFoundError",
    "InvalidRouterError",
    "TokenLimitExceededError",
    "LoadError",
]
