"""Exceptions raised by sluice, one class per API status code.

Every exception is a :class:`SluiceError` with ``code`` (the five-digit code of
the CLOVA-compatible HTTP API, such as ``"40001"``) and ``message`` attributes;
where it fits, it is also a ``ValueError`` or ``LookupError``.
"""

from __future__ import annotations

from typing import Dict, Type

__all__ = [
    "SluiceError",
    "InvalidParameterError",
    "ContextLengthExceededError",
    "EmptyQueryError",
    "UnknownModelError",
    "RouterNotFoundError",
    "InvalidRouterError",
    "TokenLimitExceededError",
    "LoadError",
    "from_code",
]


class SluiceError(Exception):
    """A sluice error with its API status code."""

    #: The status code this class stands for (``None`` for the base class).
    CODE: str | None = None

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        #: The five-digit status code, such as ``"40001"``.
        self.code = code
        #: What is wrong, in plain words.
        self.message = message


class InvalidParameterError(SluiceError, ValueError):
    """``40001``: a request field is invalid (empty messages, a bad role,
    ``max_tokens`` out of range, ...)."""

    CODE = "40001"


class ContextLengthExceededError(SluiceError, ValueError):
    """``40003``: what must be kept (system messages, the newest turn) does not
    fit the context with ``max_tokens``; the message gives the numbers."""

    CODE = "40003"


class EmptyQueryError(SluiceError, ValueError):
    """``40004``: the router was given an empty query."""

    CODE = "40004"


class UnknownModelError(SluiceError, LookupError):
    """``40080``: no model profile has this name."""

    CODE = "40080"


class RouterNotFoundError(SluiceError, LookupError):
    """``40400``: no router with this id and version."""

    CODE = "40400"


class InvalidRouterError(SluiceError, ValueError):
    """``65001``: a router file is invalid (the message names file and line)."""

    CODE = "65001"


class TokenLimitExceededError(SluiceError, ValueError):
    """``65400``: the query and history exceed the router's token limit."""

    CODE = "65400"


class LoadError(SluiceError):
    """``50000``: a profile, tokenizer or router file cannot be read."""

    CODE = "50000"


_BY_CODE: Dict[str, Type[SluiceError]] = {
    cls.CODE: cls
    for cls in (
        InvalidParameterError,
        ContextLengthExceededError,
        EmptyQueryError,
        UnknownModelError,
        RouterNotFoundError,
        InvalidRouterError,
        TokenLimitExceededError,
        LoadError,
    )
    if cls.CODE is not None
}


def from_code(code: str, message: str) -> SluiceError:
    """The exception for ``code`` (:class:`SluiceError` for a code without a
    class of its own)."""
    return _BY_CODE.get(code, SluiceError)(code, message)
