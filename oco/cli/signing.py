"""`oco signing-key …` and `oco package sign`: publisher keys, kept in files of the admin's, never in the
database.

A key file may be encrypted: its passphrase comes from `OCO_SIGNING_KEY_PASSPHRASE`, or is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from oco.cli.common import actor, fail, handled_errors, runtime
from oco.services import packages
from oco.services.signing import create_signing_key, key_file_is_encrypted, read_signing_key

PASSPHRASE_VARIABLE = "OCO_SIGNING_KEY_PASSPHRASE"
KEY_FILE = typer.Option(..., "--key", help="The private key file from `oco signing-key create`.")

app = typer.Typer(help="Publisher signing keys (Ed25519) for signed packages.", no_args_is_help=True)


@app.command("create")
def create(
    path: Path = typer.Argument(..., help="Where to write the private key (must not exist yet)."),
    encrypt: bool = typer.Option(
        False, "--encrypt", help=f"Protect the file with a passphrase (asked for, or ${PASSPHRASE_VARIABLE})."
    ),
) -> None:
    """Create a signing key: writes the private key file (mode 0600), prints the public key and its id.

    Keep the file away from the server; agents trust the public key (`oco agent enroll
    --trusted-publisher …`).
    """
    passphrase = _passphrase(confirm=True) if encrypt else None
    with handled_errors():
        public = create_signing_key(path, passphrase)
    typer.echo(f"wrote {path} (the private key: keep it off the server, readable by you alone)")
    typer.echo(f"public key: {public.text}")
    typer.echo(f"key id: {public.key_id}")


@app.command("show")
def show(path: Path = typer.Argument(..., help="A private key file.")) -> None:
    """Print the public key and key id of a private key file."""
    with handled_errors():
        key = read_signing_key(path, _passphrase() if key_file_is_encrypted(path) else None)
    typer.echo(f"public key: {key.public.text}")
    typer.echo(f"key id: {key.public.key_id}")


def sign(
    package_id: int = typer.Argument(..., help="The package version to sign."),
    key: Path = KEY_FILE,
) -> None:
    """Sign a package version with a publisher key: its version, procedures, success codes, post-actions
    and payload SHA-256. Agents that trust the key run it; any later change invalidates the signature."""
    with handled_errors():
        signing_key = read_signing_key(key, _passphrase() if key_file_is_encrypted(key) else None)
        package = packages.sign_package(runtime(), package_id, signing_key, actor())
    typer.echo(f"signed package {package.id} ({package.name}) with key {package.signature_key_id}")


def _passphrase(confirm: bool = False) -> bytes:
    text = os.environ.get(PASSPHRASE_VARIABLE)
    if text is None:
        text = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, default="")
    if not text:
        fail(f"an empty passphrase protects nothing (set {PASSPHRASE_VARIABLE} or type one)")
    return text.encode()
