"""Upload names inside payload archives (oco.domain.payloads): every agent accepts what the depot makes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oco.agent.unpack import safe_extract
from oco.depot import DirectoryDepot
from oco.domain.payloads import FALLBACK_NAME, MAX_NAME_BYTES, member_name


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("setup.exe", "setup.exe"),
        ("..", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("", FALLBACK_NAME),
        ("a/..", FALLBACK_NAME),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\setup.exe", "setup.exe"),
        ("C:setup.exe", "C_setup.exe"),
        ("/abs/tool.msi", "tool.msi"),
        ("ev\x00il\n.sh", "evil.sh"),
        ("set\u202eup\u200b.exe", "setup.exe"),
        ("report. ", "report"),
        ('what?"<>|*.txt', "what______.txt"),
        ("...", FALLBACK_NAME),
        ("\x7f", FALLBACK_NAME),
        ("nul.txt", "_nul.txt"),
        ("CON", "_CON"),
    ],
)
def test_an_upload_name_becomes_a_plain_file_name(sent: str, stored: str) -> None:
    assert member_name(sent) == stored


def test_a_long_name_is_cut_keeping_its_extension() -> None:
    name = member_name("é" * 300 + ".msi")
    assert name.endswith(".msi") and len(name.encode()) <= MAX_NAME_BYTES


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_whatever_the_name_the_agent_unpacks_the_payload(
    tmp_path_factory: pytest.TempPathFactory, sent: str
) -> None:
    name = member_name(sent)
    assert name and name not in (".", "..") and "/" not in name and "\\" not in name
    work = tmp_path_factory.mktemp("upload")
    depot = DirectoryDepot(work / "depot")
    stored = depot.put_upload(io.BytesIO(b"installer bytes"), sent)

    extracted = safe_extract(depot.path(stored.sha256), work / "job")

    assert [path.read_bytes() for path in extracted] == [b"installer bytes"]
    assert [Path(path).parent for path in extracted] == [(work / "job").resolve()]
