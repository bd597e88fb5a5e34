"""How the agent trusts an `https://` server: the system's CAs, a CA file, or a pinned certificate.

A pin is the SHA-256 fingerprint of the server's certificate, learned at `oco agent enroll` (trust on first
use: the fingerprint is printed for the admin to compare with the server's) or given there. A connection to
a server presenting another certificate is refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FINGERPRINT_HEX_DIGITS = 64
HTTPS_PORT = 443
FETCH_TIMEOUT_S = 30


class TlsTrustError(Exception):
    """A CA file or fingerprint is unusable, or the server's certificate could not be fetched."""


@dataclass(frozen=True, slots=True)
class TlsTrust:
    """What `oco agent enroll` settled on: a CA file, a pin, or neither (the system's CAs)."""

    ca_file: str = ""
    fingerprint: str = ""
    note: str = ""
    """A line for the admin: what was pinned or verified, and how."""


def fingerprint_of(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (AB:CD:…)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[index : index + 2] for index in range(0, len(digest), 2))


def normalized_fingerprint(text: str) -> str:
    """`text` (hex, any case, with or without colons, an optional `sha256:`/`SHA256 Fingerprint=` prefix)
    in the form of `fingerprint_of`; TlsTrustError if it is not a SHA-256 fingerprint."""
    value = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
    digits = value.replace(":", "").replace(" ", "").upper()
    if len(digits) != FINGERPRINT_HEX_DIGITS or any(c not in "0123456789ABCDEF" for c in digits):
        raise TlsTrustError(f"{text!r} is not a SHA-256 certificate fingerprint (64 hex digits)")
    return ":".join(digits[index : index + 2] for index in range(0, len(digits), 2))


class PinnedContext(ssl.SSLContext):
    """A client context that accepts exactly one certificate, by its SHA-256 fingerprint.

    The chain and the host name are not checked (a pin is stronger than both); the certificate is
    compared right after the handshake, before the caller can send a byte.
    """

    pinned: str

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        wrapped = super().wrap_socket(sock, *args, **kwargs)
        der = wrapped.getpeercert(binary_form=True) or b""
        presented = fingerprint_of(der)
        if presented != self.pinned:
            wrapped.close()
            raise ssl.SSLCertVerificationError(
                f"the server's certificate (SHA-256 {presented}) is not the pinned one ({self.pinned}); "
                "if the server's certificate was replaced on purpose, enroll again with --tls-fingerprint"
            )
        return wrapped


def pinned_context(fingerprint: str) -> PinnedContext:
    """A client context that accepts only the certificate with this fingerprint."""
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.pinned = normalized_fingerprint(fingerprint)
    return context


def client_verify(ca_file: str, fingerprint: str, verify: bool) -> ssl.SSLContext | bool:
    """What the agent's HTTP client verifies the server with: the pin, else the CA file, else `verify`
    (True: the system's CAs)."""
    if fingerprint:
        return pinned_context(fingerprint)
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsTrustError(f"CA file {ca_file!r} cannot be used: {exc}") from None
    return verify


def store_verify(ca_file: str, verify: bool) -> ssl.SSLContext | bool:
    """What the agent verifies an object store with when the server redirects a download there: the
    system's CAs and the CA file, if any (a pin is the server's certificate, not the store's).

    The payload itself needs no trust in the store: it is checked against the server-signed job.
    """
    if not verify:
        return False
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsTrustError(f"CA file {ca_file!r} cannot be used: {exc}") from None
    return context


def check_ca_file(ca_file: str) -> None:
    """TlsTrustError unless `ca_file` holds at least one usable CA certificate (PEM)."""
    client_verify(ca_file, "", True)


def enrollment_trust(server_url: str, ca_file: str = "", fingerprint: str = "") -> TlsTrust:
    """Decide how the agent will trust `server_url` at enrollment.

    Plain HTTP: nothing (a CA file or fingerprint is refused). A CA file or a fingerprint given: that.
    Otherwise the server's certificate is fetched: one the system's CAs verify needs no pin (so a renewed
    certificate keeps working); any other (self-signed, a private CA) is pinned, trust on first use.
    """
    parts = urlsplit(server_url)
    if parts.scheme != "https":
        if ca_file or fingerprint:
            raise TlsTrustError("--ca-file and --tls-fingerprint need an https:// server URL")
        return TlsTrust()
    if fingerprint:
        pin = normalized_fingerprint(fingerprint)
        return TlsTrust(fingerprint=pin, note=f"pinned the server certificate SHA-256 {pin}")
    if ca_file:
        path = str(Path(ca_file).resolve())
        check_ca_file(path)
        return TlsTrust(ca_file=path, note=f"the server certificate is verified with the CA file {path}")
    host, port = parts.hostname or "", parts.port or HTTPS_PORT
    if _verified_by_system(host, port):
        return TlsTrust(note="the server certificate is verified by the system's certificate authorities")
    pin = fingerprint_of(_fetch_certificate(host, port))
    return TlsTrust(
        fingerprint=pin,
        note=f"pinned the server certificate SHA-256 {pin} (trust on first use): compare it with the "
        "server's (`openssl x509 -noout -fingerprint -sha256 -in CERT`) before this agent runs",
    )


def _verified_by_system(host: str, port: int) -> bool:
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=FETCH_TIMEOUT_S) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except ssl.SSLError:
        return False
    except OSError as exc:
        raise TlsTrustError(f"cannot reach {host}:{port} to fetch its certificate: {exc}") from None


def _fetch_certificate(host: str, port: int) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=FETCH_TIMEOUT_S) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise TlsTrustError(f"cannot fetch the certificate of {host}:{port}: {exc}") from None
    if not der:
        raise TlsTrustError(f"{host}:{port} presented no certificate")
    return der
