"""Domain exceptions: one family to catch, each with its message and the field it concerns."""

from __future__ import annotations

import pytest

from oco.domain.errors import (
    DomainError,
    InvalidDeployment,
    InvalidDeploymentIpRange,
    InvalidIpRange,
    InvalidMac,
    InvalidReport,
    InvalidReturnCodes,
)


@pytest.mark.parametrize(
    "error",
    [
        InvalidIpRange,
        InvalidReturnCodes,
        InvalidDeployment,
        InvalidDeploymentIpRange,
        InvalidReport,
        InvalidMac,
    ],
)
def test_every_domain_error_carries_message_and_field(error: type[DomainError]) -> None:
    raised = error("priority 101 must be between -100 and 100", field="priority")
    assert isinstance(raised, DomainError)
    assert (str(raised), raised.message, raised.field) == (
        "priority 101 must be between -100 and 100",
        "priority 101 must be between -100 and 100",
        "priority",
    )


def test_the_field_is_optional() -> None:
    assert DomainError("bad").field is None


def test_a_container_ip_range_error_is_both_a_deployment_and_an_ip_range_error() -> None:
    with pytest.raises(InvalidDeployment):
        raise InvalidDeploymentIpRange("IP range 'x': 'x' is not an IPv4 or IPv6 address")
    with pytest.raises(InvalidIpRange):
        raise InvalidDeploymentIpRange("IP range 'x': 'x' is not an IPv4 or IPv6 address")
