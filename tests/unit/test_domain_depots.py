"""Object-store depot URLs and which downloads are redirects (oco.domain.depots)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.depots import DepotRedirect, parse_s3_url, redirects


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("s3://oco-payloads", ("oco-payloads", "")),
        ("s3://oco-payloads/", ("oco-payloads", "")),
        ("s3://oco-payloads/site-a", ("oco-payloads", "site-a/")),
        ("s3://oco.payloads/site-a/depot/", ("oco.payloads", "site-a/depot/")),
        ("  s3://b12/x  ", ("b12", "x/")),
    ],
)
def test_an_s3_url_names_a_bucket_and_a_key_prefix(url: str, parsed: tuple[str, str]) -> None:
    assert parse_s3_url(url) == parsed


@pytest.mark.parametrize(
    "url",
    [
        "",
        "oco-payloads/site",
        "https://oco-payloads/site",
        "s3://",
        "s3://ab",
        "s3://Upper-Case",
        "s3://-leading",
        "s3://user:secret@bucket/p",
        "s3://bucket:9000/p",
        "s3://bucket/p?versionId=1",
        "s3://bucket/a//b",
        "s3://bucket/a\nb",
        "s3://" + "b" * 64,
    ],
)
def test_anything_else_is_refused_with_the_url_named(url: str) -> None:
    with pytest.raises(ValueError, match="depot URL"):
        parse_s3_url(url)


_bucket = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)
_segment = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)


@given(_bucket, st.lists(_segment, max_size=4))
def test_the_prefix_is_the_path_with_one_trailing_slash(bucket: str, segments: list[str]) -> None:
    path = "/".join(segments)
    parsed_bucket, prefix = parse_s3_url(f"s3://{bucket}/{path}")
    assert parsed_bucket == bucket
    assert prefix == (path + "/" if path else "")
    assert not prefix.startswith("/") and not prefix.endswith("//")


@given(st.text(max_size=80))
def test_any_text_parses_or_is_a_value_error(text: str) -> None:
    try:
        bucket, prefix = parse_s3_url(text)
    except ValueError:
        return
    assert 3 <= len(bucket) <= 63 and prefix in ("", prefix.rstrip("/") + "/")


@pytest.mark.parametrize(
    ("policy", "asks", "redirected"),
    [
        (DepotRedirect.NEVER, False, False),
        (DepotRedirect.NEVER, True, False),
        (DepotRedirect.OURS, False, False),
        (DepotRedirect.OURS, True, True),
        (DepotRedirect.ALWAYS, False, True),
        (DepotRedirect.ALWAYS, True, True),
    ],
)
def test_who_is_redirected(policy: DepotRedirect, asks: bool, redirected: bool) -> None:
    assert redirects(policy, asks) is redirected
