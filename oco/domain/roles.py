"""Roles of console users and API tokens, and what each may do — defined once, here.

Every user has one role; an API token acts with the role its user has at the moment it is used. The console,
the admin API and the CLI ask `can`/`require` of this table and nothing else:

- an **administrator** may do everything, managing users included;
- an **operator** runs the deployments: deploys and uninstalls, renews and edits containers, adds packages,
  edits computers, groups and assignments — but manages no users and deletes no packages;
- a **read-only** user sees everything and may change only their own password.

Two rules keep a server manageable: the last active administrator is never disabled, removed or given
another role (`ensure_administrator_remains`), and nobody disables, removes or changes the role of their
own account (`ensure_not_own_account`), so nobody locks themselves out by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from oco.domain.errors import LastAdministrator, NotPermitted
from oco.domain.states import Vocabulary, spell


class Role(Vocabulary, StrEnum):
    """What a console user (and their API tokens) may do; stored and written as its text."""

    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"
    READ_ONLY = "read-only"


spell(
    Role,
    {
        Role.ADMINISTRATOR: ("administrator", "Administrator"),
        Role.OPERATOR: ("operator", "Operator"),
        Role.READ_ONLY: ("read-only", "Read-only"),
    },
)


class Permission(Vocabulary, StrEnum):
    """One kind of action a role may be allowed; every route of the console and the API declares one."""

    VIEW = "view"
    CHANGE_OWN_PASSWORD = "change-own-password"
    DEPLOY = "deploy"
    EDIT_CONTAINERS = "edit-containers"
    ADD_PACKAGES = "add-packages"
    DELETE_PACKAGES = "delete-packages"
    EDIT_COMPUTERS = "edit-computers"
    EDIT_GROUPS = "edit-groups"
    MANAGE_USERS = "manage-users"


spell(
    Permission,
    {
        Permission.VIEW: ("view", "see computers, packages, groups, jobs and the audit log"),
        Permission.CHANGE_OWN_PASSWORD: ("change-own-password", "change their own password"),
        Permission.DEPLOY: ("deploy", "deploy, uninstall and wake computers"),
        Permission.EDIT_CONTAINERS: (
            "edit-containers",
            "edit, enable, disable, renew and delete job containers and their jobs",
        ),
        Permission.ADD_PACKAGES: ("add-packages", "add packages"),
        Permission.DELETE_PACKAGES: ("delete-packages", "delete packages"),
        Permission.EDIT_COMPUTERS: ("edit-computers", "add and delete computers and their assignments"),
        Permission.EDIT_GROUPS: ("edit-groups", "create, change and delete groups"),
        Permission.MANAGE_USERS: ("manage-users", "manage users and their API tokens"),
    },
)

_READ_ONLY = frozenset({Permission.VIEW, Permission.CHANGE_OWN_PASSWORD})
_OPERATOR = _READ_ONLY | {
    Permission.DEPLOY,
    Permission.EDIT_CONTAINERS,
    Permission.ADD_PACKAGES,
    Permission.EDIT_COMPUTERS,
    Permission.EDIT_GROUPS,
}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset(Permission),
    Role.OPERATOR: _OPERATOR,
    Role.READ_ONLY: _READ_ONLY,
}
"""The permissions of each role: the one table every entry point enforces."""

WRITES = frozenset(Permission) - {Permission.VIEW}
"""The permissions that change something (every route that writes declares one of them)."""


def can(role: Role, permission: Permission) -> bool:
    """Whether `role` may do what `permission` covers."""
    return permission in GRANTS[role]


def require(role: Role, permission: Permission, username: str = "") -> None:
    """Refuse (NotPermitted, a 403) what `role` may not do, saying who, which role and what."""
    if can(role, permission):
        return
    who = f"{username} has" if username else "you have"
    raise NotPermitted(
        f"not allowed: {who} the {role.text} role, which may not {permission.label} (ask an administrator)"
    )


def allowed(role: Role) -> tuple[Permission, ...]:
    """What `role` may do, in the order of `Permission`."""
    return tuple(p for p in Permission if can(role, p))


@dataclass(frozen=True, slots=True)
class Account:
    """What the rules on users look at: a user's role and whether they may log in."""

    role: Role
    enabled: bool

    @property
    def active_administrator(self) -> bool:
        """An enabled administrator: one who can manage users."""
        return self.enabled and self.role is Role.ADMINISTRATOR


def ensure_administrator_remains(
    username: str, before: Account, after: Account | None, active_administrators: int
) -> None:
    """Refuse (LastAdministrator) a change that would leave no active administrator.

    `after` is the account once changed (None: removed); `active_administrators` counts the enabled
    administrators before the change, this account included.
    """
    loses_one = before.active_administrator and not (after and after.active_administrator)
    if loses_one and active_administrators <= 1:
        raise LastAdministrator(
            f"{username!r} is the last active administrator: make another user an administrator first",
            field="username",
        )


def ensure_not_own_account(
    username: str, acting_user: str | None, before: Account, after: Account | None
) -> None:
    """Refuse (NotPermitted) disabling, removing or changing the role of one's own account."""
    if acting_user != username:
        return
    if after is None:
        raise NotPermitted("you cannot remove your own account; another administrator can")
    if not after.enabled and before.enabled:
        raise NotPermitted("you cannot disable your own account; another administrator can")
    if after.role is not before.role:
        raise NotPermitted("you cannot change the role of your own account; another administrator can")
