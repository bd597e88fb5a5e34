"""Which forwarding headers are believed (oco.domain.proxies)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.proxies import client_address, client_used_https, is_trusted

PROXIES = ["127.0.0.1", "10.0.0.0/8", "not an address"]


@pytest.mark.parametrize(
    ("address", "trusted"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("127.0.0.2", False), ("::1", False), ("junk", False)],
)
def test_a_proxy_is_trusted_by_address_or_network(address: str, trusted: bool) -> None:
    assert is_trusted(address, PROXIES) is trusted


def test_the_client_is_the_first_untrusted_hop_from_the_nearest() -> None:
    assert client_address("127.0.0.1", "198.51.100.7, 10.0.0.5", PROXIES) == "198.51.100.7"
    assert client_address("192.0.2.1", "198.51.100.7", PROXIES) == "192.0.2.1"  # an untrusted peer's header
    assert client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"


@pytest.mark.parametrize(
    ("scheme", "peer", "header", "https"),
    [
        ("https", "192.0.2.1", None, True),  # our own TLS
        ("http", "127.0.0.1", "https", True),  # a trusted TLS-terminating proxy
        ("http", "127.0.0.1", "HTTPS, http", True),  # the client's hop comes first
        ("http", "127.0.0.1", "http", False),
        ("http", "192.0.2.1", "https", False),  # anyone else's header is ignored
        ("http", "127.0.0.1", None, False),
    ],
)
def test_https_is_ours_or_a_trusted_proxys_word(
    scheme: str, peer: str, header: str | None, https: bool
) -> None:
    assert client_used_https(scheme, peer, header, PROXIES) is https


@given(st.text(max_size=60), st.text(max_size=60))
def test_no_header_from_an_untrusted_peer_changes_anything(forwarded_for: str, forwarded_proto: str) -> None:
    assert client_address("192.0.2.1", forwarded_for, PROXIES) == "192.0.2.1"
    assert client_used_https("http", "192.0.2.1", forwarded_proto, PROXIES) is False
