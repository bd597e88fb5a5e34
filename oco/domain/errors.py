"""Exceptions of the domain; each message names what is wrong and with which value.

Every exception carries an optional `field`: the form or API field the bad value came from, so an entry
point can show the message next to it. Catch `DomainError` to handle them all.
"""

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


class InvalidDeploymentIpRange(InvalidDeployment, InvalidIpRange):
    """A container's agent IP ranges are invalid: catchable as either parent."""


class InvalidReport(DomainError):
    """An agent's `update_job_state` data is malformed."""


class InvalidMac(DomainError):
    """A MAC address is not six hexadecimal bytes."""
