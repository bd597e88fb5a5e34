"""Agent IP range constraints: parsing, messages naming the bad entry, and the admission rule."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidIpRange
from oco.domain.ipranges import admits, normalize_ip_ranges, parse_ip_ranges

SEED_EXAMPLE = "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64"


@pytest.mark.parametrize(
    ("address", "admitted"),
    [
        ("10.2.7.9", True),  # inside 10.2.0.0/16
        ("192.168.2.77", True),  # inside 192.168.2.0/24
        ("192.168.2.3", False),  # the negated host
        ("caff:eeca:ffee::1", True),  # inside the IPv6 range
        ("10.3.0.1", False),  # nowhere
        ("::1", False),
    ],
)
def test_the_seed_example(address: str, admitted: bool) -> None:
    assert admits(parse_ip_ranges(SEED_EXAMPLE), address) is admitted


def test_an_empty_list_admits_everyone() -> None:
    assert admits(parse_ip_ranges(""), "203.0.113.9")
    assert admits(parse_ip_ranges(None), "not an address")


def test_only_negations_admit_what_they_do_not_exclude() -> None:
    rules = parse_ip_ranges("!10.0.0.0/8, !192.168.0.0/16")
    assert admits(rules, "172.16.0.1")
    assert not admits(rules, "10.1.2.3")


def test_order_matters_a_matching_negation_rejects_at_once() -> None:
    assert not admits(parse_ip_ranges("!10.0.0.5,10.0.0.0/8"), "10.0.0.5")
    assert admits(parse_ip_ranges("10.0.0.0/8,!10.0.0.5"), "10.0.0.5")


def test_addresses_without_prefix_are_single_hosts() -> None:
    rules = parse_ip_ranges("127.0.0.2, ::1")
    assert [str(rule.network) for rule in rules] == ["127.0.0.2/32", "::1/128"]
    assert admits(rules, "127.0.0.2") and not admits(rules, "127.0.0.3")


def test_ipv4_clients_never_match_ipv6_ranges_and_mapped_addresses_count_as_ipv4() -> None:
    assert not admits(parse_ip_ranges("::/0"), "10.0.0.1")
    assert admits(parse_ip_ranges("10.0.0.0/8"), "::ffff:10.0.0.1")
    assert not admits(parse_ip_ranges("0.0.0.0/0"), "2001:db8::1")


def test_unparsable_client_addresses_are_only_admitted_by_an_empty_list() -> None:
    assert not admits(parse_ip_ranges("!10.0.0.0/8"), "unknown")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/33", "IP range '10.0.0.0/33': prefix length must be 0..32"),
        ("::/129", "prefix length must be 0..128"),
        ("10.0.0.0/8,banana", "IP range 'banana': 'banana' is not an IPv4 or IPv6 address"),
        ("10.0.0.0/x", "prefix length"),
        ("!", "'!' must be followed by a network"),
        ("300.1.1.1/8", "'300.1.1.1' is not"),
    ],
)
def test_bad_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidIpRange) as raised:
        parse_ip_ranges(text)
    assert message in str(raised.value)
    assert raised.value.field == "agent_ip_ranges"


def test_normalisation_keeps_order_and_canonical_forms() -> None:
    assert normalize_ip_ranges(" 10.1.2.3/16 ,, !CAFF:EECA::1/64 ") == "10.1.0.0/16,!caff:eeca::/64"
    assert normalize_ip_ranges(normalize_ip_ranges(SEED_EXAMPLE)) == normalize_ip_ranges(SEED_EXAMPLE)


ipv4_networks = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{ipaddress.IPv4Address(address)}/{prefix}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
ipv6_networks = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{ipaddress.IPv6Address(address)}/{prefix}", strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
rules_strategy = st.lists(st.tuples(st.booleans(), st.one_of(ipv4_networks, ipv6_networks)), max_size=6)
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
)


def reference(rules: list[tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]], address: str) -> bool:
    """DESIGN.md's rule, written out plainly."""
    if not rules:
        return True
    ip = ipaddress.ip_address(address)
    for negated, network in rules:
        if ip.version == network.version and ip in network:
            return not negated
    return all(negated for negated, _ in rules)


@given(rules=rules_strategy, address=addresses)
def test_admission_follows_the_rule(
    rules: list[tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]], address: str
) -> None:
    text = ",".join(("!" if negated else "") + str(network) for negated, network in rules)
    assert admits(parse_ip_ranges(text), address) is reference(rules, address)


@given(rules=rules_strategy)
def test_normalised_text_parses_to_the_same_rules(
    rules: list[tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]],
) -> None:
    text = ", ".join(("!" if negated else "") + str(network) for negated, network in rules)
    assert parse_ip_ranges(normalize_ip_ranges(text)) == parse_ip_ranges(text)


@given(network=ipv4_networks, offset=st.integers(0, 2**32 - 1))
def test_every_address_of_a_network_is_admitted_by_it(network: ipaddress.IPv4Network, offset: int) -> None:
    address = network.network_address + offset % network.num_addresses
    assert admits(parse_ip_ranges(str(network)), str(address))
    assert not admits(parse_ip_ranges(f"!{network},0.0.0.0/0"), str(address))
