"""Signatures of the agent protocol: HMAC-SHA256 of the exact body, compared in constant time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco.domain.errors import InvalidAgentInput
from oco.domain.protocol import (
    INT_MAX,
    INT_MIN,
    MAX_JSON_DEPTH,
    MAX_LOGINS,
    MAX_NAME_CHARS,
    MAX_NETWORK_INTERFACES,
    MAX_TEXT_CHARS,
    AgentMethod,
    checked,
    clean_free_text,
    forbidden_character,
    load_request,
    sign,
    signature_matches,
    too_far_ahead,
)

# RFC 4231, test case 2
RFC_KEY, RFC_BODY = "Jefe", b"what do ya want for nothing?"
RFC_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_sign_is_lowercase_hex_hmac_sha256() -> None:
    assert sign(RFC_KEY, RFC_BODY) == RFC_MAC


def test_a_signature_matches_in_any_case_and_with_blanks_around() -> None:
    assert signature_matches(RFC_KEY, RFC_BODY, RFC_MAC)
    assert signature_matches(RFC_KEY, RFC_BODY, f" {RFC_MAC.upper()}\n")


def test_missing_keys_and_signatures_never_match() -> None:
    assert not signature_matches("", RFC_BODY, sign("", RFC_BODY))
    assert not signature_matches(RFC_KEY, RFC_BODY, None)
    assert not signature_matches(RFC_KEY, RFC_BODY, "")


def test_another_body_or_key_does_not_match() -> None:
    assert not signature_matches(RFC_KEY, RFC_BODY + b" ", RFC_MAC)
    assert not signature_matches("jefe", RFC_BODY, RFC_MAC)


def test_method_names_are_ocos() -> None:
    assert [str(m) for m in AgentMethod] == [
        "oco.agent.hello",
        "oco.agent.update",
        "oco.agent.update_job_state",
        "oco.agent.download",
    ]


@given(key=st.text(min_size=1, max_size=40), body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_a_body_matches_its_own_signature_only(key: str, body: bytes, other: bytes) -> None:
    assert signature_matches(key, body, sign(key, body))
    assert signature_matches(key, other, sign(key, body)) is (other == body)


# Limits of a request ------------------------------------------------------------------------------


def request_with(data: object = None, **params: object) -> bytes:
    document = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "oco.agent.update",
        "params": {"hostname": "pc01", "uid": "u", "timestamp": 1.0, "data": data or {}, **params},
    }
    return json.dumps(document).encode()


def test_a_signature_with_a_byte_beyond_ascii_matches_nothing_and_raises_nothing() -> None:
    assert not signature_matches(RFC_KEY, RFC_BODY, RFC_MAC[:-1] + "\xe9")
    assert not signature_matches(RFC_KEY, RFC_BODY, "\u00ff" * 64)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    with pytest.raises(InvalidAgentInput, match=f"{constant} is not a JSON number") as raised:
        load_request(f'{{"params": {{"timestamp": {constant}}}}}'.encode())
    assert raised.value.syntax


def test_a_number_too_large_for_a_float_is_refused() -> None:
    with pytest.raises(InvalidAgentInput, match=r"params.timestamp must be a finite number"):
        load_request(b'{"params": {"timestamp": 1e400}}')


@pytest.mark.parametrize(
    ("field", "value"),
    [("job-id", 2**63), ("return-code", 2**63), ("return-code", -(2**63) - 1), ("ram", 10**400)],
)
def test_integers_beyond_64_bits_are_refused(field: str, value: int) -> None:
    with pytest.raises(InvalidAgentInput, match=f"params.data.{field} is an integer beyond 64 bits"):
        load_request(request_with({field: value}))


def test_64_bit_integers_pass() -> None:
    document = load_request(request_with({"a": INT_MAX, "b": INT_MIN}))
    assert document["params"]["data"] == {"a": INT_MAX, "b": INT_MIN}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_is_limited() -> None:
    assert load_request(nested(MAX_JSON_DEPTH)) is not None
    for depth in (MAX_JSON_DEPTH + 1, 1_000, 100_000):
        with pytest.raises(InvalidAgentInput, match=f"nested deeper than {MAX_JSON_DEPTH}"):
            load_request(nested(depth))


@pytest.mark.parametrize(
    ("data", "params", "message"),
    [
        ({}, {"uid": "u\x00"}, "params.uid holds the control character U+0000"),
        ({}, {"uid": "u\n"}, "params.uid holds the control character U+000A"),
        ({}, {"hostname": "pc\x1b01"}, "params.hostname holds the control character U+001B"),
        ({"os": "Linux\x85"}, {}, "params.data.os holds the control character U+0085"),
        ({"x\x00": 1}, {}, "a key of params.data holds the control character U+0000"),
        ({"os": "\ud800"}, {}, "params.data.os holds the control character U+D800"),
        ({}, {"uid": "u" * (MAX_NAME_CHARS + 1)}, f"params.uid is longer than {MAX_NAME_CHARS}"),
        ({"agent_version": "1" * 256}, {}, "params.data.agent_version is longer than 255"),
        ({"networks": [{"mac": "a" * 33}]}, {}, r"params.data.networks\[0\].mac is longer than 32"),
        ({"networks": [{"addr": "1" * 65}]}, {}, r"params.data.networks\[0\].addr is longer than 64"),
        ({"cpu": "x" * (MAX_TEXT_CHARS + 1)}, {}, f"params.data.cpu is longer than {MAX_TEXT_CHARS}"),
        ({"k" * (MAX_TEXT_CHARS + 1): 1}, {}, f"a key of params.data is longer than {MAX_TEXT_CHARS}"),
        (
            {"networks": [{}] * (MAX_NETWORK_INTERFACES + 1)},
            {},
            f"params.data.networks holds {MAX_NETWORK_INTERFACES + 1} entries, more than",
        ),
        ({"logins": [{}] * (MAX_LOGINS + 1)}, {}, f"params.data.logins holds {MAX_LOGINS + 1} entries"),
    ],
)
def test_what_breaks_a_limit_is_refused_naming_the_field(
    data: dict[str, object], params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidAgentInput, match=message.replace("U+", r"U\+")) as raised:
        load_request(request_with(data, **params))
    assert not raised.value.syntax


def test_inventory_texts_may_hold_tabs_and_line_breaks_and_lists_may_be_full() -> None:
    data = {
        "software": [{"name": "a\tb\r\nc"}],
        "networks": [{"mac": "a" * 32}] * MAX_NETWORK_INTERFACES,
        "logins": [{"username": "u"}] * MAX_LOGINS,
    }
    assert load_request(request_with(data))["params"]["data"] == data


def test_control_characters_in_the_inventory_document_are_replaced_not_refused() -> None:
    body = request_with({"software": [{"name": "a\x00b", "description": "\x1b[2J"}], "cpu": "x\x07"})
    data = load_request(body)["params"]["data"]
    assert data["software"] == [{"name": "a\ufffdb", "description": "\ufffd[2J"}]
    assert data["cpu"] == "x\ufffd"


def test_the_output_of_a_procedure_is_kept_with_its_control_characters_replaced() -> None:
    output = "line 1\r\n\x1b[32mok\x1b[0m\x00\ud800\tend" + "x" * MAX_TEXT_CHARS
    document = load_request(request_with({"message": output}))
    assert document["params"]["data"][
        "message"
    ] == "line 1\r\n\ufffd[32mok\ufffd[0m\ufffd\ufffd\tend" + "x" * (MAX_TEXT_CHARS)


@settings(deadline=None)  # the machine running the tests may be busy
@given(st.text())
def test_cleaned_output_holds_no_forbidden_character_and_cleaning_twice_changes_nothing(text: str) -> None:
    cleaned = clean_free_text(text)
    assert forbidden_character(cleaned) is None
    assert clean_free_text(cleaned) == cleaned
    assert len(cleaned) == len(text)


plain_text = st.text(
    alphabet=st.characters(exclude_categories=["Cc", "Cs"]) | st.sampled_from("\t\r\n"), max_size=30
)
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(plain_text, children, max_size=4),
    max_leaves=20,
)


@settings(deadline=None)  # the machine running the tests may be busy
@given(documents)
def test_a_document_within_the_limits_passes_unchanged(document: object) -> None:
    assert load_request(json.dumps(document).encode()) == document


hostile_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.integers(0, 40).map(lambda n: "x" * (MAX_TEXT_CHARS - 20 + n)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
shaped = st.fixed_dictionaries(
    {
        "params": st.fixed_dictionaries(
            {},
            optional={
                "hostname": st.text(max_size=6),
                "uid": hostile_documents,
                "data": st.fixed_dictionaries(
                    {},
                    optional={
                        "os": hostile_documents,
                        "message": hostile_documents,
                        "networks": st.lists(
                            st.fixed_dictionaries({}, optional={"mac": st.text(max_size=40)}), max_size=3
                        ),
                    },
                ),
            },
        )
    }
)


def _no_constant(name: str) -> object:
    raise ValueError(name)


def _slow_path(raw: bytes) -> object:
    """The field-by-field check alone, behind a parser that refuses NaN and Infinity."""
    return checked(json.loads(raw, parse_constant=_no_constant))


@settings(deadline=None)  # the machine running the tests may be busy
@given(st.one_of(hostile_documents, shaped), st.booleans())
def test_the_hot_path_decides_as_the_field_by_field_check(document: object, spaced: bool) -> None:
    raw = json.dumps(document, ensure_ascii=spaced, allow_nan=True).encode()
    try:
        expected: object = _slow_path(raw)
    except (InvalidAgentInput, ValueError) as exc:
        with pytest.raises(InvalidAgentInput) as raised:
            load_request(raw)
        if isinstance(exc, InvalidAgentInput):
            assert raised.value.message == exc.message
        return
    assert load_request(raw) == expected


@settings(deadline=None)  # the machine running the tests may be busy
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused_cleanly(raw: bytes) -> None:
    try:
        load_request(raw)
    except InvalidAgentInput as exc:
        assert exc.message


@settings(deadline=None)  # the machine running the tests may be busy
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_a_timestamp_is_too_far_ahead_beyond_the_allowance_only(offset: float) -> None:
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert too_far_ahead(now.timestamp() + offset, now, 86400) is (
        now.timestamp() + offset > now.timestamp() + 86400
    )
    assert too_far_ahead(1e308, now, 86400)
    assert not too_far_ahead(now.timestamp(), now, 86400)


@pytest.mark.parametrize("escape", [r"\b", r"\f", r"\u0008", r"\u000c", "\x7f"])
def test_a_control_character_in_any_spelling_is_found_on_the_hot_path_too(escape: str) -> None:
    """JSON writes U+0008 and U+000C as short escapes too, and DEL raw: the hot path's search knows them."""

    def body(field: str) -> bytes:
        return ('{"params": {"hostname": "pc1", "data": {"' + field + '": "Deb' + escape + 'ian"}}}').encode()

    with pytest.raises(InvalidAgentInput, match=r"params\.data\.os holds the control character"):
        load_request(body("os"))  # a name: refused
    cleaned = load_request(body("message"))  # free text: cleaned
    assert cleaned == _slow_path(body("message"))
    assert cleaned["params"]["data"]["message"] == "Deb\ufffdian"
