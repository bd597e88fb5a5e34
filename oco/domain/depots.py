"""Where payloads are kept and how they reach agents: an object store's URL, and whether a download is
answered with a redirect to a signed URL instead of the bytes.

A redirect saves the server the traffic, but the agent then fetches from the object store itself: it must
reach it, trust its certificate and follow a redirect at all. OCO agents do (python-requests follows
redirects by default and drops the request body on a 302); OCO Deploy's agent asks for one with
`x-oco-follows-redirect: 1`. Nothing else needs trusting: every agent of ours checks the payload against
the digest of the server-signed job.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

S3_SCHEME = "s3"
MAX_BUCKET_CHARS = 63


class DepotRedirect(StrEnum):
    """Which agents' downloads from an object-store depot are redirects to a signed URL."""

    NEVER = "never"
    """None: the server streams every payload itself."""
    OURS = "ours"
    """Agents that ask for one (`x-oco-follows-redirect`), i.e. OCO Deploy's; OCO agents are streamed to."""
    ALWAYS = "always"
    """Every agent, OCO agents included (they must reach the object store)."""


def redirects(policy: DepotRedirect, agent_asks: bool) -> bool:
    """Whether a download is answered with a redirect to a signed URL (when the depot can sign one)."""
    if policy is DepotRedirect.ALWAYS:
        return True
    return policy is DepotRedirect.OURS and agent_asks


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://bucket[/prefix]`; a prefix, when given, ends with exactly one `/`.

    ValueError names what is wrong with the URL.
    """
    text = url.strip()
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in text):  # urlsplit would drop tabs and newlines
        raise ValueError(f"depot URL {url!r}: control character or backslash")
    parts = urlsplit(text)
    if parts.scheme != S3_SCHEME:
        raise ValueError(f"depot URL {url!r}: expected s3://bucket/prefix")
    bucket = parts.netloc
    if not _valid_bucket(bucket) or parts.query or parts.fragment:
        raise ValueError(
            f"depot URL {url!r}: expected s3://bucket/prefix with a bucket name of 3 to 63 "
            "lower-case letters, digits, dots and hyphens"
        )
    prefix = parts.path.strip("/")
    if "//" in prefix:
        raise ValueError(f"depot URL {url!r}: empty segment in the key prefix")
    return bucket, f"{prefix}/" if prefix else ""


def _valid_bucket(name: str) -> bool:
    allowed = all(c.isascii() and (c.islower() or c.isdigit() or c in ".-") for c in name)
    return 3 <= len(name) <= MAX_BUCKET_CHARS and allowed and name[0].isalnum() and name[-1].isalnum()
