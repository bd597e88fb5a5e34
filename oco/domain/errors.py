"""Exceptions of the domain; each message names what is wrong and with which value."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused a value."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidIpRange(DomainError):
    """An agent IP range entry is not a valid IPv4/IPv6 network."""


class InvalidReturnCodes(DomainError):
    """A success return code list is not a comma-separated list of integers."""


class InvalidDeployment(DomainError):
    """A deployment's settings break a rule (empty name, end before start, priority out of range…)."""
