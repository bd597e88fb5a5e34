"""Errors of the use cases; entry points turn them into HTTP 4xx, JSON-RPC errors or exit status 2."""

from __future__ import annotations


class ServiceError(Exception):
    """A use case refused its input; the message says what is wrong and with which value."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    """What was asked for does not exist."""


class Conflict(ServiceError):
    """The request clashes with what is stored (a duplicate name, a package still in use…)."""


class InvalidInput(ServiceError):
    """A value is malformed or out of range."""


class Unauthorized(ServiceError):
    """The caller could not be authenticated."""
