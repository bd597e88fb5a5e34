"""Use cases of package families and packages: create (with the payload), list, show, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import Computer, ComputerPackage, Job, Package, PackageFamily, PackageGroupMember
from oco.depot import Depot, StoredPayload
from oco.domain.errors import DomainError
from oco.domain.returncodes import format_codes, parse_codes
from oco.domain.signing import SigningKey
from oco.domain.states import PENDING_STATES, PostAction, UpgradeBehavior
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import audit, payloadlock
from oco.services.listing import AnySelect, PageRequest, contains, distinct_words, export_batches, fetch_page
from oco.services.runtime import Runtime
from oco.services.signing import signed_fields
from oco.services.views import (
    AssignmentPublic,
    FamilyListPublic,
    FamilyPublic,
    PackageDetailPublic,
    PackagePagePublic,
    PackagePublic,
    VersionPublic,
    family_view,
    package_detail_view,
    package_view,
)

PayloadStorer = Callable[[Depot], StoredPayload]
"""Puts a payload into the depot (streaming it from wherever it comes) and says what was stored."""


@dataclass(frozen=True, slots=True)
class PackageSpec:
    """What an admin gives to create a package version."""

    family: str
    version: str
    install_procedure: str
    uninstall_procedure: str = ""
    install_success_codes: str = "0"
    uninstall_success_codes: str = "0"
    install_post_action: PostAction = PostAction.NONE
    uninstall_post_action: PostAction = PostAction.NONE
    upgrade_behavior: UpgradeBehavior = UpgradeBehavior.EXPLICIT_UNINSTALL
    compatible_os: str = ""
    compatible_os_version: str = ""
    compatible_architecture: str = ""
    notes: str = ""
    download_for_uninstall: bool = False
    """Uninstall jobs fetch the payload first (for uninstall procedures that need its files)."""


def add_package(session: Session, spec: PackageSpec, payload: StoredPayload | None, actor: str) -> Package:
    """Create a package version (and its family when new) in the caller's transaction; the payload is
    already in the depot."""
    family_name = spec.family.strip()
    version = spec.version.strip()
    if not family_name:
        raise InvalidInput("package family name must not be empty", field="family")
    if not version:
        raise InvalidInput("package version must not be empty", field="version")
    if not spec.install_procedure.strip():
        raise InvalidInput("install procedure must not be empty", field="install_procedure")
    install_codes = _normalized_codes(spec.install_success_codes, "install_success_codes")
    uninstall_codes = _normalized_codes(spec.uninstall_success_codes, "uninstall_success_codes")

    family = session.scalar(select(PackageFamily).where(PackageFamily.name == family_name))
    if family is None:
        family = PackageFamily(name=family_name)
        session.add(family)
        session.flush()
    elif session.scalar(select(Package.id).where(Package.family_id == family.id, Package.version == version)):
        raise Conflict(f"package {family_name!r} version {version!r} already exists", field="version")

    package = Package(
        family=family,
        version=version,
        notes=spec.notes,
        install_procedure=spec.install_procedure,
        install_success_codes=install_codes,
        install_post_action=int(spec.install_post_action),
        uninstall_procedure=spec.uninstall_procedure,
        uninstall_success_codes=uninstall_codes,
        uninstall_post_action=int(spec.uninstall_post_action),
        upgrade_behavior=str(spec.upgrade_behavior),
        compatible_os=spec.compatible_os.strip(),
        compatible_os_version=spec.compatible_os_version.strip(),
        compatible_architecture=spec.compatible_architecture.strip(),
        download_for_uninstall=spec.download_for_uninstall,
        payload_sha256=payload.sha256 if payload else None,
        payload_size=payload.size if payload else None,
        author=actor,
    )
    session.add(package)
    session.flush()
    audit.record(session, actor, "package.create", "package", package.id, name=package.display_name)
    return package


def _normalized_codes(text: str, field: str) -> str:
    try:
        return format_codes(parse_codes(text))
    except DomainError as exc:
        raise InvalidInput(str(exc), field=field) from exc


def list_packages(rt: Runtime, family: str | None = None) -> list[PackagePublic]:
    """All packages, by family name then creation; optionally only one family's."""
    query = (
        select(Package)
        .join(Package.family)
        .options(selectinload(Package.family))
        .order_by(PackageFamily.name, Package.id)
    )
    if family is not None:
        query = query.where(PackageFamily.name == family)
    with rt.reading() as session:
        return [package_view(p) for p in session.scalars(query)]


def list_families(rt: Runtime) -> list[FamilyPublic]:
    """Every package family with its versions, by name."""
    with rt.reading() as session:
        return [family_view(f) for f in all_families(session)]


def all_families(session: Session) -> list[PackageFamily]:
    """Every package family by name, its versions loaded."""
    query = select(PackageFamily).options(selectinload(PackageFamily.packages)).order_by(PackageFamily.name)
    return list(session.scalars(query))


def package_detail(rt: Runtime, package_id: int) -> PackageDetailPublic:
    """A package with the computers it is installed on and its family's other versions."""
    with rt.reading() as session:
        package = get_package(session, package_id)
        installed_on = session.scalars(
            select(ComputerPackage)
            .where(ComputerPackage.package_id == package_id)
            .options(selectinload(ComputerPackage.computer), selectinload(ComputerPackage.package))
            .order_by(ComputerPackage.id)
        )
        return package_detail_view(package, list(installed_on))


def package_page(rt: Runtime, package_id: int, search: str, request: PageRequest) -> PackagePagePublic:
    """A package, its family's other versions, and one page of the computers it is installed on that
    match `search`, by hostname."""
    with rt.reading() as session:
        package = get_package(session, package_id)
        order = {"computer": Computer.hostname, "installed": ComputerPackage.installed}
        installed = _installed_on(package_id, search)
        fetched = fetch_page(session, installed, order, ComputerPackage.id, request, "computer")
        return PackagePagePublic(
            package=package_view(package),
            other_versions=[
                VersionPublic(id=p.id, version=p.version)
                for p in package.family.packages
                if p.id != package.id
            ],
            installed_on=fetched.page(_assignments(package.id, package.display_name, fetched.rows)),
        )


def export_installed_on(rt: Runtime, package_id: int, search: str) -> Iterator[AssignmentPublic]:
    """Every computer the package is installed on that matches `search`, by hostname (a CSV download)."""
    with rt.reading() as session:
        package = get_package(session, package_id)
        name = package.display_name
    return export_batches(
        rt,
        _installed_on(package_id, search),
        (Computer.hostname, ComputerPackage.id),
        lambda _, rows: _assignments(package_id, name, rows),
    )


def _installed_on(package_id: int, search: str) -> AnySelect:
    return (
        select(ComputerPackage, Computer.hostname)
        .join(Computer, ComputerPackage.computer_id == Computer.id)
        .where(ComputerPackage.package_id == package_id)
        .where(*(contains(Computer.hostname, word) for word in distinct_words(search)))
    )


def _assignments(package_id: int, name: str, rows: Sequence[Any]) -> list[AssignmentPublic]:
    """The rows of `_installed_on` as read models."""
    return [
        AssignmentPublic(
            id=a.id,
            computer_id=a.computer_id,
            computer=hostname,
            package_id=package_id,
            package=name,
            installed=a.installed,
            installed_by_job_id=a.installed_by_job_id,
        )
        for a, hostname in rows
    ]


def search_families(rt: Runtime, search: str, request: PageRequest) -> FamilyListPublic:
    """One page of the package families whose name or one of whose versions matches `search`."""
    with rt.reading() as session:
        conditions = [
            or_(
                contains(PackageFamily.name, word),
                PackageFamily.id.in_(select(Package.family_id).where(contains(Package.version, word))),
            )
            for word in distinct_words(search)
        ]
        matching = select(PackageFamily).where(*conditions).options(selectinload(PackageFamily.packages))
        order = {"name": PackageFamily.name, "created": PackageFamily.created}
        fetched = fetch_page(session, matching, order, PackageFamily.id, request, "name")
        return FamilyListPublic(families=fetched.page([family_view(row[0]) for row in fetched.rows]))


def get_package(session: Session, package_id: int) -> Package:
    """The package with its family (and the family's versions) loaded; NotFound otherwise."""
    package = session.get(
        Package, package_id, options=[selectinload(Package.family).selectinload(PackageFamily.packages)]
    )
    if package is None:
        raise NotFound(f"package {package_id} does not exist")
    return package


def resolve_package_ids(session: Session, package_ids: Sequence[int]) -> list[int]:
    """The ids, in order, after checking each exists; NotFound names the first that does not."""
    found = set(session.scalars(select(Package.id).where(Package.id.in_(list(package_ids)))))
    for package_id in package_ids:
        if package_id not in found:
            raise NotFound(f"package {package_id} does not exist")
    return list(package_ids)


def sign_package(rt: Runtime, package_id: int, key: SigningKey, actor: str) -> PackagePublic:
    """Sign the package with a publisher's key and store the signature (replacing an earlier one) with
    the key's id and public key; the key itself stays with the caller."""
    with rt.transaction() as session:
        package = get_package(session, package_id)
        signature = key.sign(signed_fields(package))
        package.signature = signature.signature
        package.signature_key_id = signature.key_id
        package.signature_public_key = signature.public_key
        package.signed_by = actor
        package.signed_at = rt.now()
        session.flush()
        audit.record(
            session,
            actor,
            "package.sign",
            "package",
            package.id,
            name=package.display_name,
            key_id=signature.key_id,
        )
        return package_view(package)


def delete_package(session: Session, package_id: int, actor: str) -> str | None:
    """Delete a package version nobody has installed and no pending job needs (caller's transaction).

    Finished jobs keep the package's name. Returns the payload digest no package refers to any more:
    the caller removes it from the depot once the transaction has committed.
    """
    package = get_package(session, package_id)
    installed = session.scalar(select(func.count()).where(ComputerPackage.package_id == package_id))
    if installed:
        raise Conflict(
            f"package {package.display_name!r} is still assigned to {installed} computer(s); "
            "uninstall it or remove the assignments first"
        )
    pending = session.scalar(
        select(func.count()).where(Job.package_id == package_id, Job.state.in_(PENDING_STATES))
    )
    if pending:
        raise Conflict(f"package {package.display_name!r} has {pending} pending job(s)")
    family = package.family
    session.execute(delete(PackageGroupMember).where(PackageGroupMember.package_id == package_id))
    session.delete(package)
    session.flush()
    if not session.scalar(select(func.count()).where(Package.family_id == family.id)):
        session.delete(family)
    audit.record(session, actor, "package.delete", "package", package_id, name=package.display_name)
    digest = package.payload_sha256
    if digest and not payload_in_use(session, digest):
        return digest
    return None


def payload_in_use(session: Session, sha256: str) -> bool:
    """True while some package still refers to the payload `sha256`."""
    return bool(session.scalar(select(func.count()).where(Package.payload_sha256 == sha256)))


def create_package(
    runtime: Runtime,
    spec: PackageSpec,
    store_payload: PayloadStorer | None,
    actor: str,
) -> PackagePublic:
    """Store the payload, then create the package in one transaction; answers with the new package.

    The payload goes into the depot first (it may be large and is streamed); if the package cannot be
    created, a payload no other package uses is removed again, so nothing half-written stays.
    """
    payload: StoredPayload | None = None
    try:
        with payloadlock.storing(runtime):
            payload = store_payload(runtime.depot) if store_payload else None
            with runtime.transaction() as session:
                return package_view(add_package(session, spec, payload, actor))
    except BaseException:
        if payload is not None:
            remove_unused_payload(runtime, payload.sha256)
        raise


def remove_package(runtime: Runtime, package_id: int, actor: str) -> None:
    """Delete a package in one transaction, then its payload if no package refers to it any more."""
    with runtime.transaction() as session:
        orphan = delete_package(session, package_id, actor)
    if orphan:
        remove_unused_payload(runtime, orphan)


def remove_unused_payload(runtime: Runtime, sha256: str) -> None:
    """Delete a payload from the depot unless a package refers to it, or is about to (`payloadlock`)."""
    with payloadlock.removing(runtime):
        with runtime.transaction() as session:
            unused = not payload_in_use(session, sha256)
        if unused:
            runtime.depot.delete(sha256)
