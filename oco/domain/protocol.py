"""Wire-level rules of the OCO agent protocol shared by the server and our agent (PROTOCOL.md)."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

SIGNATURE_HEADER_AGENT = "x-oco-agent-signature"
SIGNATURE_HEADER_SERVER = "x-oco-server-signature"
SHA256_HEADER = "x-oco-payload-sha256"


class AgentMethod(StrEnum):
    """The JSON-RPC methods of the agent endpoint."""

    HELLO = "oco.agent.hello"
    UPDATE = "oco.agent.update"
    UPDATE_JOB_STATE = "oco.agent.update_job_state"
    DOWNLOAD = "oco.agent.download"


def sign(key: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the exact body bytes, keyed with `key`."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(key: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the signature of `body` under `key`, compared in constant time."""
    if not key or not signature:
        return False
    return hmac.compare_digest(sign(key, body), signature.strip().lower())
