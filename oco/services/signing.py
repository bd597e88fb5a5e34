"""Publisher signing keys and what of a stored package they sign.

The private key lives in a file of the publisher's (mode 0600, optionally encrypted with a passphrase);
it is read only to sign, in the signing process, and never stored in the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from oco.db.models import Package
from oco.domain.errors import InvalidSigningKey
from oco.domain.signing import PublisherKey, SignedFields, SigningKey, signing_key_from_pem
from oco.domain.states import PostAction
from oco.errors import Conflict, InvalidInput

KEY_FILE_MODE = 0o600


def signed_fields(package: Package) -> SignedFields:
    """The fields of a stored package that a publisher's signature covers."""
    return SignedFields(
        version=package.version,
        install_procedure=package.install_procedure,
        install_success_codes=package.install_success_codes,
        install_post_action=PostAction(package.install_post_action),
        uninstall_procedure=package.uninstall_procedure,
        uninstall_success_codes=package.uninstall_success_codes,
        uninstall_post_action=PostAction(package.uninstall_post_action),
        payload_sha256=package.payload_sha256 or "",
    )


def create_signing_key(path: Path, passphrase: bytes | None = None) -> PublisherKey:
    """Write a new Ed25519 signing key to `path` (mode 0600; never over an existing file), encrypted
    with `passphrase` when given; returns its public key."""
    key = SigningKey(Ed25519PrivateKey.generate())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise Conflict(f"key file {str(path)!r} already exists; a signing key is never overwritten") from None
    except OSError as exc:
        raise InvalidInput(f"cannot create key file {str(path)!r}: {exc.strerror}", field="key") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem(passphrase))
        handle.flush()
        os.fsync(handle.fileno())
    return key.public


def read_signing_key(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """The signing key in the file `path`; InvalidInput says why the file cannot serve as one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"key file {str(path)!r}: {exc.strerror}", field="key") from None
    try:
        return signing_key_from_pem(data, passphrase)
    except InvalidSigningKey as exc:
        raise InvalidInput(f"key file {str(path)!r}: {exc.message}", field="key") from None


def key_file_is_encrypted(path: Path) -> bool:
    """Whether the key file at `path` is a passphrase-protected PEM (so a passphrase must be asked for)."""
    try:
        return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in path.read_bytes()
    except OSError:
        return False
