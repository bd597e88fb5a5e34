"""Agent IP range constraints: parsing, messages naming the bad entry, and the admission rule."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidIpRange
from oco.domain.ipranges import (
    IpRangeRule,
    admits,
    client_ip,
    format_ip_ranges,
    normalize_ip_ranges,
    parse_ip_ranges,
)

SEED_EXAMPLE = "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64"
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


# The seed's example ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "admitted"),
    [
        ("10.2.7.9", True),  # inside 10.2.0.0/16
        ("192.168.2.77", True),  # inside 192.168.2.0/24
        ("192.168.2.3", False),  # the negated host, listed before its network
        ("caff:eeca:ffee::1", True),  # inside the IPv6 range
        ("CAFF:EECA:FFEE:0:FFFF:FFFF:FFFF:FFFF", True),  # its last address, written in capitals
        ("caff:eeca:ffef::1", False),  # just outside it
        ("10.3.0.1", False),  # nowhere
        ("::1", False),
    ],
)
def test_the_seed_example(address: str, admitted: bool) -> None:
    assert admits(parse_ip_ranges(SEED_EXAMPLE), address) is admitted


# The admission rule ----------------------------------------------------------------------------


def test_an_empty_list_admits_everyone_even_an_unparsable_address() -> None:
    assert admits(parse_ip_ranges(""), "203.0.113.9")
    assert admits(parse_ip_ranges(None), "not an address")
    assert admits(parse_ip_ranges(" , ,"), None)


def test_a_list_of_only_negations_admits_what_it_does_not_exclude() -> None:
    rules = parse_ip_ranges("!10.0.0.0/8, !192.168.0.0/16")
    assert admits(rules, "172.16.0.1")
    assert not admits(rules, "10.1.2.3")
    assert not admits(rules, "192.168.4.4")


def test_a_mixed_list_rejects_an_address_nothing_matches() -> None:
    assert not admits(parse_ip_ranges("!10.0.0.0/8, 192.168.0.0/16"), "172.16.0.1")


def test_order_matters_a_matching_negation_rejects_at_once() -> None:
    assert not admits(parse_ip_ranges("!10.0.0.5,10.0.0.0/8"), "10.0.0.5")
    assert admits(parse_ip_ranges("10.0.0.0/8,!10.0.0.5"), "10.0.0.5")


def test_addresses_without_prefix_are_single_hosts() -> None:
    rules = parse_ip_ranges("127.0.0.2, ::1")
    assert [str(rule.network) for rule in rules] == ["127.0.0.2/32", "::1/128"]
    assert admits(rules, "127.0.0.2") and not admits(rules, "127.0.0.3")
    assert admits(rules, "::1") and not admits(rules, "::2")


def test_ipv4_clients_never_match_ipv6_ranges_and_back() -> None:
    assert not admits(parse_ip_ranges("::/0"), "10.0.0.1")
    assert not admits(parse_ip_ranges("0.0.0.0/0"), "2001:db8::1")
    assert not admits(parse_ip_ranges("::ffff:0:0/96"), "10.0.0.1")


def test_ipv4_mapped_client_addresses_count_as_ipv4() -> None:
    assert admits(parse_ip_ranges("10.0.0.0/8"), "::ffff:10.0.0.1")
    assert not admits(parse_ip_ranges("!10.0.0.0/8"), "::ffff:10.0.0.1")
    assert client_ip("::ffff:10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")


def test_client_addresses_may_come_bracketed_or_with_a_zone() -> None:
    assert client_ip(" [2001:db8::1] ") == ipaddress.IPv6Address("2001:db8::1")
    assert client_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert admits(parse_ip_ranges("fe80::/10"), "fe80::1%eth0")


@pytest.mark.parametrize("address", ["unknown", "", None, "10.0.0.300", "10.0.0.1:8080"])
def test_unparsable_client_addresses_are_only_admitted_by_an_empty_list(address: str | None) -> None:
    assert client_ip(address) is None
    assert not admits(parse_ip_ranges("!10.0.0.0/8"), address)
    assert not admits(parse_ip_ranges("0.0.0.0/0"), address)


# Parsing and messages --------------------------------------------------------------------------


def test_whitespace_and_empty_entries_are_tolerated() -> None:
    assert parse_ip_ranges(" 10.0.0.0/8 ,, ! 192.168.0.0 / 16 ,") == (
        IpRangeRule(ipaddress.ip_network("10.0.0.0/8"), negated=False),
        IpRangeRule(ipaddress.ip_network("192.168.0.0/16"), negated=True),
    )


def test_host_bits_are_accepted_and_cleared() -> None:
    (rule,) = parse_ip_ranges("10.1.2.3/8")
    assert str(rule.network) == "10.0.0.0/8"
    assert admits((rule,), "10.200.0.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/33", "IP range '10.0.0.0/33': prefix length must be 0..32"),
        ("::/129", "IP range '::/129': prefix length must be 0..128"),
        ("10.0.0.0/8,banana", "IP range 'banana': 'banana' is not an IPv4 or IPv6 address"),
        ("10.0.0.0/x", "IP range '10.0.0.0/x': prefix length must be 0..32"),
        ("10.0.0.0/", "IP range '10.0.0.0/': prefix length must be 0..32"),
        ("10.0.0.0/-1", "prefix length must be 0..32"),
        ("10.0.0.0/²", "prefix length must be 0..32"),
        ("10.0.0.0/8/9", "prefix length must be 0..32"),
        ("!", "IP range '!': '!' must be followed by a network"),
        ("!!10.0.0.1", "IP range '!!10.0.0.1': '!10.0.0.1' is not an IPv4 or IPv6 address"),
        ("300.1.1.1/8", "IP range '300.1.1.1/8': '300.1.1.1' is not an IPv4 or IPv6 address"),
        ("/8", "IP range '/8': '' is not an IPv4 or IPv6 address"),
        ("fe80::1%eth0/64", "IP range 'fe80::1%eth0/64': a zone index ('%…') is not allowed"),
        ("10.0.0.0 10.1.0.0", "'10.0.0.0 10.1.0.0' is not an IPv4 or IPv6 address"),
    ],
)
def test_bad_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidIpRange) as raised:
        parse_ip_ranges(text)
    assert message in str(raised.value)
    assert raised.value.field == "agent_ip_ranges"


def test_normalization_keeps_order_and_canonical_forms() -> None:
    assert normalize_ip_ranges(" 10.1.2.3/16 ,, !CAFF:EECA::1/64 ,10.0.0.9") == (
        "10.1.0.0/16,!caff:eeca::/64,10.0.0.9/32"
    )
    assert normalize_ip_ranges(SEED_EXAMPLE) == (
        "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,caff:eeca:ffee::/64"
    )
    assert normalize_ip_ranges(None) == "" and normalize_ip_ranges("  ") == ""


def test_normalization_refuses_what_parsing_refuses() -> None:
    with pytest.raises(InvalidIpRange, match=r"10\.0\.0\.0/99"):
        normalize_ip_ranges("10.0.0.0/8, 10.0.0.0/99")


# Properties against a reference written with ipaddress ---------------------------------------

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
ipv4_addresses = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
addresses = st.one_of(ipv4_addresses, st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))))


def as_text(rules: list[tuple[bool, Net]], separator: str = ",") -> str:
    return separator.join(("!" if negated else "") + str(network) for negated, network in rules)


def reference(rules: list[tuple[bool, Net]], address: str) -> bool:
    """DESIGN.md's rule, written out plainly."""
    if not rules:
        return True
    ip = ipaddress.ip_address(address)
    for negated, network in rules:
        if ip.version == network.version and ip in network:
            return not negated
    return all(negated for negated, _ in rules)


@given(rules=rules_strategy, address=addresses)
def test_admission_follows_the_rule(rules: list[tuple[bool, Net]], address: str) -> None:
    assert admits(parse_ip_ranges(as_text(rules)), address) is reference(rules, address)


@st.composite
def rules_with_an_address_inside_one(draw: st.DrawFn) -> tuple[list[tuple[bool, Net]], str]:
    """Random rules and an address of one of them, so that matches are frequent, not rare."""
    rules = draw(rules_strategy.filter(bool))
    _, network = draw(st.sampled_from(rules))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return rules, str(network.network_address + offset)


@given(case=rules_with_an_address_inside_one())
def test_admission_follows_the_rule_for_addresses_that_match(
    case: tuple[list[tuple[bool, Net]], str],
) -> None:
    rules, address = case
    assert admits(parse_ip_ranges(as_text(rules)), address) is reference(rules, address)


@given(rules=rules_strategy, address=ipv4_addresses)
def test_a_mapped_address_is_judged_as_its_ipv4_address(rules: list[tuple[bool, Net]], address: str) -> None:
    parsed = parse_ip_ranges(as_text(rules))
    assert admits(parsed, f"::ffff:{address}") is admits(parsed, address)


@given(rules=rules_strategy, address=addresses)
def test_the_first_matching_rule_decides(rules: list[tuple[bool, Net]], address: str) -> None:
    parsed = parse_ip_ranges(as_text(rules))
    ip = ipaddress.ip_address(address)
    first = next((rule for rule in parsed if rule.matches(ip)), None)
    if first is not None:
        assert admits(parsed, address) is not first.negated
        assert admits((*parsed, *parse_ip_ranges("!0.0.0.0/0,!::/0")), address) is not first.negated


@given(rules=rules_strategy)
def test_normalized_text_parses_to_the_same_rules(rules: list[tuple[bool, Net]]) -> None:
    text = as_text(rules, separator=" , ")
    normalized = normalize_ip_ranges(text)
    assert parse_ip_ranges(normalized) == parse_ip_ranges(text)
    assert normalize_ip_ranges(normalized) == normalized
    assert format_ip_ranges(parse_ip_ranges(text)) == normalized


@given(network=ipv4_networks, offset=st.integers(0, 2**32 - 1))
def test_every_address_of_a_network_is_admitted_by_it(network: ipaddress.IPv4Network, offset: int) -> None:
    address = network.network_address + offset % network.num_addresses
    assert admits(parse_ip_ranges(str(network)), str(address))
    assert not admits(parse_ip_ranges(f"!{network},0.0.0.0/0"), str(address))
