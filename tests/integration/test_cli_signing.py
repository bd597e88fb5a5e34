"""`oco signing-key create|show` and `oco package sign`: a private key file for the admin, signatures
stored with the package, and one-line errors with exit status 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oco.cli import app
from oco.domain.signing import parse_public_key

Oco = Callable[..., str]


@pytest.fixture
def oco(sqlite_url: str, tmp_path: Path) -> Oco:
    runner = CliRunner()
    env = {"OCO_DATABASE_URL": sqlite_url, "OCO_DEPOT_PATH": str(tmp_path / "depot")}

    def invoke(*args: str, stdin: str | None = None, expect: int = 0, **extra_env: str) -> str:
        result = runner.invoke(app, list(args), env={**env, **extra_env}, input=stdin)
        assert result.exit_code == expect, result.output
        return result.output

    return invoke


def created_key(oco: Oco, path: Path, *args: str, **env: str) -> tuple[str, str]:
    """Create a key file; returns the printed public key and key id."""
    lines = oco("signing-key", "create", str(path), *args, **env).splitlines()
    public = next(line.removeprefix("public key: ") for line in lines if line.startswith("public key: "))
    key_id = next(line.removeprefix("key id: ") for line in lines if line.startswith("key id: "))
    return public, key_id


def add_package(oco: Oco) -> str:
    return oco("package", "add", "--family", "Tool", "--version", "1", "--install", "./install.sh").strip()


def test_create_writes_a_private_key_file_and_prints_the_public_key(oco: Oco, tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    public, key_id = created_key(oco, path)

    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert parse_public_key(public).key_id == key_id
    assert oco("signing-key", "show", str(path)).splitlines() == [
        f"public key: {public}",
        f"key id: {key_id}",
    ]


def test_create_never_overwrites_a_key(oco: Oco, tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    created_key(oco, path)
    before = path.read_bytes()
    output = oco("signing-key", "create", str(path), expect=2)
    assert (
        output.strip() == f"error: key file {str(path)!r} already exists; a signing key is never overwritten"
    )
    assert path.read_bytes() == before


def test_sign_stores_the_signature_shown_by_package_show(oco: Oco, tmp_path: Path) -> None:
    public, key_id = created_key(oco, tmp_path / "publisher.pem")
    package_id = add_package(oco)
    assert json.loads(oco("package", "show", package_id, "--json"))["signature_status"] == "unsigned"

    output = oco("package", "sign", package_id, "--key", str(tmp_path / "publisher.pem"))

    assert output.strip() == f"signed package {package_id} (Tool 1) with key {key_id}"
    shown = json.loads(oco("package", "show", package_id, "--json"))
    assert (shown["signature_status"], shown["signature_key_id"], shown["signature_public_key"]) == (
        "valid",
        key_id,
        public,
    )
    assert shown["signed_by"].startswith("cli")
    assert "valid" in oco("package", "list")
    text = oco("package", "show", package_id)
    assert "signature_status" in text and key_id in text


def test_an_encrypted_key_takes_its_passphrase_from_the_environment(oco: Oco, tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    _, key_id = created_key(oco, path, "--encrypt", OCO_SIGNING_KEY_PASSPHRASE="s3cret")
    assert path.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    package_id = add_package(oco)

    output = oco("package", "sign", package_id, "--key", str(path), OCO_SIGNING_KEY_PASSPHRASE="s3cret")
    assert key_id in output

    wrong = oco("package", "sign", package_id, "--key", str(path), OCO_SIGNING_KEY_PASSPHRASE="x", expect=2)
    assert wrong.startswith("error: key file") and len(wrong.strip().splitlines()) == 1


def test_an_encrypted_key_asks_for_its_passphrase(oco: Oco, tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    created_key(oco, path, "--encrypt", stdin="typed\ntyped\n")
    package_id = add_package(oco)
    assert "signed package" in oco("package", "sign", package_id, "--key", str(path), stdin="typed\n")


def test_an_empty_passphrase_is_refused(oco: Oco, tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    output = oco("signing-key", "create", str(path), "--encrypt", OCO_SIGNING_KEY_PASSPHRASE="", expect=2)
    assert "empty passphrase" in output and not path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("hello", "not a PEM private key"),
        ("ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "not a PEM private key"),
    ],
)
def test_sign_with_a_wrong_key_file_exits_2_with_one_line(
    oco: Oco, tmp_path: Path, content: str | None, message: str
) -> None:
    key = tmp_path / "key.pem"
    if content is not None:
        key.write_text(content)
    package_id = add_package(oco)

    output = oco("package", "sign", package_id, "--key", str(key), expect=2)

    assert output.startswith(f"error: key file {str(key)!r}") and message in output
    assert len(output.strip().splitlines()) == 1
    assert json.loads(oco("package", "show", package_id, "--json"))["signature_status"] == "unsigned"


def test_sign_with_an_rsa_key_exits_2(oco: Oco, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = tmp_path / "rsa.pem"
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    output = oco("package", "sign", add_package(oco), "--key", str(key), expect=2)
    assert "not an Ed25519 key" in output and len(output.strip().splitlines()) == 1


def test_sign_an_unknown_package_exits_2_with_one_line(oco: Oco, tmp_path: Path) -> None:
    created_key(oco, tmp_path / "publisher.pem")
    output = oco("package", "sign", "4711", "--key", str(tmp_path / "publisher.pem"), expect=2)
    assert output.strip() == "error: package 4711 does not exist"


def test_show_of_a_missing_key_file_exits_2(oco: Oco, tmp_path: Path) -> None:
    output = oco("signing-key", "show", str(tmp_path / "absent.pem"), expect=2)
    assert output.startswith("error: key file") and len(output.strip().splitlines()) == 1
