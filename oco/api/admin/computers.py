"""`/computers`: managed computers, and waking them."""

from __future__ import annotations

from fastapi import APIRouter

from oco.api.admin.schemas import Actor, ComputerIds, Id, NewComputer, RuntimeDep, WakeResult
from oco.api.auth import allow
from oco.domain.roles import Permission
from oco.services import computers, wol
from oco.services.views import ComputerDetailPublic, ComputerPublic

router = APIRouter(dependencies=[allow(Permission.VIEW)], tags=["computers"])


@router.get("/computers")
def list_computers(runtime: RuntimeDep) -> list[ComputerPublic]:
    """Every computer, by hostname."""
    return computers.list_computers(runtime)


@router.post("/computers", status_code=201, dependencies=[allow(Permission.EDIT_COMPUTERS)])
def add_computer(runtime: RuntimeDep, actor: Actor, body: NewComputer) -> ComputerPublic:
    """Pre-create a computer so its agent can register with the registration key."""
    return computers.add_computer(runtime, body.hostname, actor, body.notes)


@router.get("/computers/{computer_id}")
def show_computer(runtime: RuntimeDep, computer_id: Id) -> ComputerDetailPublic:
    """A computer with its inventory, installed packages and jobs."""
    return computers.computer_detail(runtime, computer_id)


@router.delete("/computers/{computer_id}", status_code=204, dependencies=[allow(Permission.EDIT_COMPUTERS)])
def delete_computer(runtime: RuntimeDep, actor: Actor, computer_id: Id) -> None:
    """Forget a computer with its assignments and jobs."""
    computers.delete_computer(runtime, computer_id, actor)


@router.post("/computers/wake", dependencies=[allow(Permission.DEPLOY)])
def wake(runtime: RuntimeDep, body: ComputerIds) -> WakeResult:
    """Send Wake-on-LAN magic packets to the computers now."""
    return WakeResult(packets_sent=wol.wake_computers(runtime, body.computer_ids))
