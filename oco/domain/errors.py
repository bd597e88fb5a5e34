"""Exceptions of the domain; each message names what is wrong and with which value.

All are `DomainError`s (beneath `oco.errors.OcoError`) and carry an optional `field`: the form or API field
the bad value came from, so an entry point can show the message next to it.
"""

from __future__ import annotations

from oco.errors import Conflict, DomainError, Forbidden

__all__ = [
    "DomainError",
    "InvalidAgentInput",
    "InvalidChoice",
    "InvalidDeployment",
    "InvalidDeploymentIpRange",
    "InvalidHostname",
    "InvalidIpRange",
    "InvalidMac",
    "InvalidPublisherKey",
    "InvalidReport",
    "InvalidRetries",
    "InvalidReturnCodes",
    "InvalidRollout",
    "InvalidSigningKey",
    "InvalidVersionCondition",
    "InvalidWindow",
    "LastAdministrator",
    "NotPermitted",
    "UnsupportedValue",
]


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


class InvalidHostname(DomainError):
    """A hostname is empty, too long or holds characters no hostname has."""


class InvalidChoice(DomainError):
    """A text is none of the spellings of an enumeration (`from_text` of the vocabulary)."""


class InvalidPublisherKey(DomainError):
    """A publisher's public key, key id or signature is not in the form `oco.domain.signing` writes."""


class InvalidSigningKey(DomainError):
    """A private signing key file is unreadable, encrypted without a passphrase, or not Ed25519."""


class NotPermitted(DomainError, Forbidden):
    """A role may not do this (`oco.domain.roles`): answered 403, catchable as either parent."""


class LastAdministrator(DomainError, Conflict):
    """A change would leave the server without an active administrator: answered 409."""


class InvalidAgentInput(DomainError):
    """An agent request breaks a limit of the wire format (`oco.domain.protocol`): `field` is its path.

    `syntax` is True when the body is not JSON at all (JSON-RPC "parse error"), False for a value out of
    the limits."""

    def __init__(self, message: str, *, field: str | None = None, syntax: bool = False) -> None:
        super().__init__(message, field=field)
        self.syntax = syntax


class InvalidVersionCondition(DomainError):
    """A software version condition is not an operator and a version ("< 120")."""


class InvalidRollout(InvalidDeployment):
    """A rollout's phases, criterion, soak or halt rule is invalid."""


class InvalidRetries(InvalidDeployment):
    """A deployment's retries or retry delay is out of range."""


class InvalidWindow(InvalidDeployment):
    """A maintenance window is not days and times such as 'Mon-Fri 18:00-06:00'."""


class UnsupportedValue(DomainError):
    """A value of another system (OCO-Server's, on import) has no counterpart here; the row holding it is
    skipped with this reason."""


class InvalidDownloadLimit(DomainError):
    """A download limit (`--max-downloads`, a network limit) is not a count in range."""
