r"""Publisher signatures of packages (Ed25519): what is signed, how it is encoded, who an agent trusts.

A publisher signs a package version with a private key that never reaches the server; the server stores
the signature and hands it to agents with each job; an agent that pins publishers runs only jobs whose
signature verifies with a key it trusts and has not revoked, and only what that signature covers.

What is signed (`SignedFields`): the version, the install and uninstall procedures, their success codes
and post-actions, and the payload's SHA-256. The signature is over their canonical encoding, version 1:

    b"oco-deploy package signature 1\n"
    then, for each field in `FIELD_NAMES` order:
        <field name> b" " <number of bytes of the value, decimal> b"\n" <the value, UTF-8> b"\n"

The values are the stored texts: version, procedures and success codes exactly as the server keeps them
(success codes normalised: ascending, comma-separated, no blanks — "0,3010"), post-actions by their text
(`none`, `restart`, `shutdown`, `exit`), the payload's SHA-256 in lowercase hex, or empty without payload.
The length prefix makes the encoding unambiguous whatever the values hold (newlines included).

Keys are written `ed25519:` + the base64 of the 32 raw public key bytes; a key id is the first 16 hex
digits of the SHA-256 of those bytes; a signature is the base64 of its 64 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from oco.domain.errors import InvalidChoice, InvalidPublisherKey, InvalidSigningKey
from oco.domain.states import JobAction, PostAction, Vocabulary, spell

ENCODING_HEADER = b"oco-deploy package signature 1\n"
KEY_PREFIX = "ed25519:"
KEY_ID_LENGTH = 16
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SIGNATURE_INVALID = "package signature invalid"
"""The start of the message of a job an agent refuses for its signature (reported -9999)."""

FIELD_NAMES = (
    "version",
    "install-procedure",
    "install-success-codes",
    "install-post-action",
    "uninstall-procedure",
    "uninstall-success-codes",
    "uninstall-post-action",
    "payload-sha256",
)
"""The signed fields in the order of the canonical encoding; also their keys on the wire."""

WIRE_SIGNATURE = "package-signature"
"""The key of a job on the wire that carries its package's signature: {"key-id", "signature", "fields"}."""

_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}|")


@dataclass(frozen=True, slots=True)
class SignedFields:
    """What a publisher's signature vouches for: the parts of a package that decide what runs."""

    version: str
    install_procedure: str
    install_success_codes: str
    install_post_action: PostAction
    uninstall_procedure: str
    uninstall_success_codes: str
    uninstall_post_action: PostAction
    payload_sha256: str
    """Lowercase hex, or "" for a package without payload."""

    def texts(self) -> dict[str, str]:
        """Each field by its name in `FIELD_NAMES`, as the text that is encoded (and sent)."""
        return {
            "version": self.version,
            "install-procedure": self.install_procedure,
            "install-success-codes": self.install_success_codes,
            "install-post-action": PostAction(self.install_post_action).text,
            "uninstall-procedure": self.uninstall_procedure,
            "uninstall-success-codes": self.uninstall_success_codes,
            "uninstall-post-action": PostAction(self.uninstall_post_action).text,
            "payload-sha256": self.payload_sha256,
        }

    def procedure(self, action: JobAction) -> str:
        """The signed procedure of `action`."""
        return self.install_procedure if action is JobAction.INSTALL else self.uninstall_procedure

    def post_action(self, action: JobAction) -> PostAction:
        """The signed post-action of `action`."""
        return self.install_post_action if action is JobAction.INSTALL else self.uninstall_post_action


def canonical_encoding(fields: SignedFields) -> bytes:
    """The bytes a signature is over (the encoding the module docstring describes)."""
    parts = [ENCODING_HEADER]
    for name, value in fields.texts().items():
        data = value.encode("utf-8", "surrogatepass")
        parts += [name.encode("ascii"), b" ", str(len(data)).encode("ascii"), b"\n", data, b"\n"]
    return b"".join(parts)


def fields_from_texts(texts: Any) -> SignedFields:
    """The fields written as `SignedFields.texts` writes them; InvalidPublisherKey names a bad one."""
    if not isinstance(texts, Mapping):
        raise InvalidPublisherKey("the signed fields are not an object")
    values: dict[str, str] = {}
    for name in FIELD_NAMES:
        value = texts.get(name)
        if not isinstance(value, str):
            raise InvalidPublisherKey(f"signed field {name!r} is missing or not a text")
        values[name] = value
    if not _SHA256.fullmatch(values["payload-sha256"]):
        raise InvalidPublisherKey(f"signed payload SHA-256 {values['payload-sha256']!r} is not lowercase hex")
    try:
        install_post, uninstall_post = (
            PostAction.from_text(values[f"{action}-post-action"]) for action in ("install", "uninstall")
        )
    except InvalidChoice as exc:
        raise InvalidPublisherKey(f"signed post-action: {exc.message}") from None
    return SignedFields(
        version=values["version"],
        install_procedure=values["install-procedure"],
        install_success_codes=values["install-success-codes"],
        install_post_action=install_post,
        uninstall_procedure=values["uninstall-procedure"],
        uninstall_success_codes=values["uninstall-success-codes"],
        uninstall_post_action=uninstall_post,
        payload_sha256=values["payload-sha256"],
    )


# Keys ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublisherKey:
    """A publisher's public key (the 32 raw Ed25519 bytes)."""

    raw: bytes

    @property
    def text(self) -> str:
        """`ed25519:` + base64: how the key is written in configuration files and shown."""
        return KEY_PREFIX + base64.b64encode(self.raw).decode("ascii")

    @property
    def key_id(self) -> str:
        """The first 16 hex digits of the key's SHA-256: how signatures and revocation lists name it."""
        return key_id_of(self.raw)


def key_id_of(raw: bytes) -> str:
    """The key id of the raw public key bytes `raw`."""
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


def parse_public_key(text: str, *, field: str | None = None) -> PublisherKey:
    """A key written `ed25519:<base64 of 32 bytes>`; InvalidPublisherKey names the bad text."""
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not value.startswith(KEY_PREFIX):
        raise InvalidPublisherKey(f"public key {text!r} must be written {KEY_PREFIX}<base64>", field=field)
    raw = _base64(value.removeprefix(KEY_PREFIX))
    if raw is None or len(raw) != PUBLIC_KEY_BYTES:
        raise InvalidPublisherKey(
            f"public key {text!r} is not the base64 of {PUBLIC_KEY_BYTES} bytes", field=field
        )
    return PublisherKey(raw)


def parse_key_id(text: str, *, field: str | None = None) -> str:
    """A key id (16 hex digits, case ignored) or a public key, as the key id it names."""
    value = text.strip() if isinstance(text, str) else text
    if isinstance(value, str) and value.startswith(KEY_PREFIX):
        return parse_public_key(value, field=field).key_id
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value.lower()):
        raise InvalidPublisherKey(
            f"key id {text!r} must be {KEY_ID_LENGTH} hexadecimal digits (or a public key)", field=field
        )
    return value.lower()


class SigningKey:
    """A publisher's private key: signs packages; written only to the publisher's own key file."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @property
    def public(self) -> PublisherKey:
        """The public key that verifies this key's signatures."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublisherKey(raw)

    def sign(self, fields: SignedFields) -> PackageSignature:
        """The signature of `fields` by this key."""
        signature = self._private.sign(canonical_encoding(fields))
        public = self.public
        return PackageSignature(
            key_id=public.key_id,
            public_key=public.text,
            signature=base64.b64encode(signature).decode("ascii"),
        )

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """The key as a PKCS#8 PEM file, encrypted with `passphrase` when one is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def signing_key_from_pem(data: bytes, passphrase: bytes | None = None) -> SigningKey:
    """The Ed25519 private key of a PEM file; InvalidSigningKey says why it cannot be used."""
    try:
        private = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        raise InvalidSigningKey(f"the key file cannot be opened: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InvalidSigningKey(f"not a PEM private key (or a wrong passphrase): {first_line}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidSigningKey(f"the key file holds a {type(private).__name__}, not an Ed25519 key")
    return SigningKey(private)


@dataclass(frozen=True, slots=True)
class PackageSignature:
    """A stored signature: the key that made it (id and public key) and the signature's base64."""

    key_id: str
    public_key: str
    signature: str


def verify(fields: SignedFields, signature: str, key: PublisherKey) -> bool:
    """True when `signature` (base64) is `key`'s signature of exactly these `fields`."""
    raw = _base64(signature) if isinstance(signature, str) else None
    if raw is None or len(raw) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(raw, canonical_encoding(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


class SignatureStatus(Vocabulary, StrEnum):
    """Whether a stored package is signed, judged again against its current fields."""

    UNSIGNED = "unsigned"
    VALID = "valid"
    INVALID = "invalid"


spell(
    SignatureStatus,
    {
        SignatureStatus.UNSIGNED: ("unsigned", "Not signed"),
        SignatureStatus.VALID: ("valid", "Signed"),
        SignatureStatus.INVALID: ("invalid", "Signature invalid: the package changed after it was signed"),
    },
)


def signature_status(fields: SignedFields, signature: str | None, public_key: str | None) -> SignatureStatus:
    """Unsigned without a stored signature; valid when it verifies for the fields as they are now."""
    if not signature or not public_key:
        return SignatureStatus.UNSIGNED
    try:
        key = parse_public_key(public_key)
    except InvalidPublisherKey:
        return SignatureStatus.INVALID
    return SignatureStatus.VALID if verify(fields, signature, key) else SignatureStatus.INVALID


# The wire -----------------------------------------------------------------------------------------


def wire_signature(key_id: str, signature: str, fields: SignedFields) -> dict[str, Any]:
    """The `package-signature` value of a job: the key id, the signature and the fields it covers."""
    return {"key-id": key_id, "signature": signature, "fields": fields.texts()}


@dataclass(frozen=True, slots=True)
class WireSignature:
    """A job's `package-signature`, parsed."""

    key_id: str
    signature: str
    fields: SignedFields


def parse_wire_signature(value: Any) -> WireSignature:
    """Parse a job's `package-signature`; InvalidPublisherKey says what is malformed."""
    if not isinstance(value, Mapping):
        raise InvalidPublisherKey("the signature is not an object")
    key_id, signature = value.get("key-id"), value.get("signature")
    if not isinstance(key_id, str) or not isinstance(signature, str):
        raise InvalidPublisherKey("the signature lacks its key id or its value")
    return WireSignature(parse_key_id(key_id), signature, fields_from_texts(value.get("fields")))


# The agent's check ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """The publishers an agent trusts and the key ids it has revoked; no trusted key: no pinning."""

    trusted: tuple[PublisherKey, ...] = ()
    revoked: frozenset[str] = frozenset()

    @property
    def pins(self) -> bool:
        """Whether jobs must be signed at all (off unless a publisher is trusted)."""
        return bool(self.trusted)

    def key(self, key_id: str) -> PublisherKey | None:
        """The trusted key with id `key_id`, unless it is revoked."""
        if key_id in self.revoked:
            return None
        return next((key for key in self.trusted if key.key_id == key_id), None)


def trust_policy(trusted: Iterable[str], revoked: Iterable[str] = ()) -> TrustPolicy:
    """Parse the `trusted_publishers` (public keys) and `revoked_publishers` (key ids or public keys)."""
    return TrustPolicy(
        trusted=tuple(parse_public_key(text, field="trusted_publishers") for text in trusted),
        revoked=frozenset(parse_key_id(text, field="revoked_publishers") for text in revoked),
    )


@dataclass(frozen=True, slots=True)
class JobClaim:
    """What a job on the wire asks an agent to do, as far as a signature can vouch for it."""

    action: str | None
    procedure: str
    download: bool
    payload_sha256: str | None
    post_actions: frozenset[PostAction]
    """The post-actions whose key carries a value (restart, shutdown, exit)."""
    signature: Any
    """The raw `package-signature` value; None when the job has none."""


def signature_problem(policy: TrustPolicy, claim: JobClaim) -> str | None:
    """Why an agent under `policy` must refuse the job before downloading anything; None: it may run.

    Without trusted publishers every job may run. Otherwise the job must carry a signature by a trusted,
    unrevoked key over fields that match what the job asks: its action's procedure, its payload's
    SHA-256, and its action's post-action — or a shutdown, which the server adds for a computer it woke.
    """
    if not policy.pins:
        return None
    if claim.signature is None:
        return "the package is not signed"
    try:
        wire = parse_wire_signature(claim.signature)
    except InvalidPublisherKey as exc:
        return f"malformed signature: {exc.message}"
    if wire.key_id in policy.revoked:
        return f"signed with key {wire.key_id}, which this agent has revoked"
    key = policy.key(wire.key_id)
    if key is None:
        return f"signed with key {wire.key_id}, which this agent does not trust"
    if not verify(wire.fields, wire.signature, key):
        return f"the signature by key {wire.key_id} does not match the package's fields"
    return _mismatch(wire.fields, claim)


def _mismatch(fields: SignedFields, claim: JobClaim) -> str | None:
    try:
        action = JobAction(claim.action or "")
    except ValueError:
        return f"the job's action {claim.action!r} is neither install nor uninstall"
    if claim.procedure != fields.procedure(action):
        return f"the job's procedure is not the signed {action} procedure"
    signed_payload = fields.payload_sha256 or None
    if claim.download != bool(signed_payload) or (signed_payload and claim.payload_sha256 != signed_payload):
        return "the job's payload is not the signed payload"
    allowed = {fields.post_action(action), PostAction.SHUTDOWN} - {PostAction.NONE}
    if len(claim.post_actions) > 1 or not claim.post_actions <= allowed:
        wanted = ", ".join(sorted(action.text for action in claim.post_actions))
        return f"the job's post-action ({wanted}) is not the signed one"
    return None


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
