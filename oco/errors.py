"""The errors of OCO Deploy: one root, and one table that says what each becomes at an entry point.

Every refusal is an `OcoError` carrying a message a person can act on and, where it applies, the field the
bad value came from (so a form can show the message next to it). Beneath the root:

- `DomainError` — a rule of the domain refused a value (`oco.domain.errors` has the specific ones);
- `ServiceError` — a use case refused its request: `NotFound`, `Conflict`, `InvalidInput`, `Unauthorized`,
  `Forbidden`, `Unavailable`, `TooManyAttempts`;
- `DepotError` — a payload could not be stored or read (`DepotFull`: not enough free space;
  `DepotUnavailable`: the object store cannot be reached);
- `ConfigError` — a setting holds an invalid value.

`outcome` reads `OUTCOMES`, the one table every entry point uses: the admin API answers with its status and
the message as JSON, the console with an error page, the CLI with one line and exit status 2, the agent API
with a JSON-RPC error (401 in plain text for authentication failures, as OCO agents expect).

This module imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass


class OcoError(Exception):
    """Something a client sent or asked for was refused; `message` says what and with which value."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DomainError(OcoError):
    """A rule of the domain refused a value."""


class ServiceError(OcoError):
    """A use case refused its request."""


class NotFound(ServiceError):
    """What was asked for does not exist."""


class Conflict(ServiceError):
    """The request clashes with what is stored (a duplicate name, a package still in use…)."""


class InvalidInput(ServiceError):
    """A value is malformed or out of range."""


class Unauthorized(ServiceError):
    """The caller could not be authenticated."""


class Forbidden(ServiceError):
    """The caller is known but may not do this."""


class Unavailable(ServiceError):
    """The database (or another resource the use case needs) cannot serve the request now."""


class TooManyAttempts(ServiceError):
    """The caller failed too often (logins): refused for `retry_after` seconds without a check."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DepotError(OcoError):
    """A payload could not be stored or read."""


class DepotFull(DepotError):
    """The depot has not enough free space for a payload; nothing of it is kept."""


class DepotUnavailable(DepotError):
    """The depot's object store cannot be reached or refused the request (not the payload's fault)."""


class ConfigError(OcoError):
    """The configuration file or an environment variable holds an invalid value."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an error becomes at an entry point: an HTTP status and the title of its error page."""

    status: int
    title: str


CLI_EXIT_STATUS = 2
"""The exit status of a command whose input was refused."""

OUTCOMES: dict[type[OcoError], Outcome] = {
    OcoError: Outcome(400, "Invalid input"),
    NotFound: Outcome(404, "Not found"),
    Conflict: Outcome(409, "Conflict"),
    Unauthorized: Outcome(401, "Not authenticated"),
    Forbidden: Outcome(403, "Not allowed"),
    Unavailable: Outcome(503, "Unavailable"),
    TooManyAttempts: Outcome(429, "Too many attempts"),
    DepotFull: Outcome(507, "Depot out of space"),
    DepotUnavailable: Outcome(503, "Depot unavailable"),
}
"""Error class → outcome; a class not listed takes its nearest listed parent's (at worst the root's)."""


def outcome(error: OcoError) -> Outcome:
    """The outcome of `error`, by the nearest class of its hierarchy listed in `OUTCOMES`."""
    for cls in type(error).__mro__:
        found = OUTCOMES.get(cls)
        if found is not None:
            return found
    return OUTCOMES[OcoError]
