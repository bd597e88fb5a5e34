"""One error root and one table from error to outcome (`oco.errors`), used by every entry point."""

from __future__ import annotations

import pytest

from oco.depot import DepotError
from oco.domain.errors import (
    InvalidChoice,
    InvalidDeployment,
    InvalidDeploymentIpRange,
    InvalidHostname,
    InvalidIpRange,
    InvalidMac,
    InvalidReport,
    InvalidReturnCodes,
)
from oco.errors import (
    OUTCOMES,
    ConfigError,
    Conflict,
    DepotFull,
    DepotUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    OcoError,
    ServiceError,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
    outcome,
)
from oco.services.agents import AuthenticationFailed


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound, 404),
        (Conflict, 409),
        (InvalidInput, 400),
        (Unauthorized, 401),
        (AuthenticationFailed, 401),
        (Forbidden, 403),
        (Unavailable, 503),
        (DepotFull, 507),
        (DepotUnavailable, 503),
        (ServiceError, 400),
        (DepotError, 400),
        (ConfigError, 400),
        (InvalidIpRange, 400),
        (InvalidReturnCodes, 400),
        (InvalidDeployment, 400),
        (InvalidDeploymentIpRange, 400),
        (InvalidReport, 400),
        (InvalidMac, 400),
        (InvalidHostname, 400),
        (InvalidChoice, 400),
    ],
)
def test_every_error_has_its_status(error: type[OcoError], status: int) -> None:
    assert outcome(error("what is wrong")).status == status


def test_too_many_attempts_is_429_and_says_when_to_retry() -> None:
    error = TooManyAttempts("too many failed logins", retry_after=5)
    assert (outcome(error).status, error.retry_after) == (429, 5)


def test_a_subclass_takes_its_nearest_listed_parent() -> None:
    class StaleJob(Conflict):
        pass

    assert outcome(StaleJob("job 3 changed meanwhile")) == OUTCOMES[Conflict]


def test_the_message_is_what_str_shows_and_the_field_is_optional() -> None:
    error = InvalidDeployment("priority 101 must be between -100 and 100", field="priority")
    assert (str(error), error.message, error.field) == (
        "priority 101 must be between -100 and 100",
        "priority 101 must be between -100 and 100",
        "priority",
    )
    assert NotFound("job 9 does not exist").field is None


def test_each_outcome_has_a_title_for_its_page() -> None:
    assert all(result.title for result in OUTCOMES.values())
    assert outcome(NotFound("x")).title == "Not found"
