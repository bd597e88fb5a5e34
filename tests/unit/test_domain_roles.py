"""The roles and what each may do (`oco.domain.roles`): every role and permission, and the rules that keep
a server manageable (an administrator remains; nobody locks themselves out)."""

from __future__ import annotations

import itertools

import pytest

from oco.domain.errors import LastAdministrator, NotPermitted
from oco.domain.roles import (
    GRANTS,
    WRITES,
    Account,
    Permission,
    Role,
    allowed,
    can,
    ensure_administrator_remains,
    ensure_not_own_account,
    require,
)
from oco.errors import Conflict, Forbidden, outcome

EXPECTED: dict[Role, set[Permission]] = {
    Role.ADMINISTRATOR: set(Permission),
    Role.OPERATOR: {
        Permission.VIEW,
        Permission.CHANGE_OWN_PASSWORD,
        Permission.DEPLOY,
        Permission.EDIT_CONTAINERS,
        Permission.ADD_PACKAGES,
        Permission.EDIT_COMPUTERS,
        Permission.EDIT_GROUPS,
    },
    Role.READ_ONLY: {Permission.VIEW, Permission.CHANGE_OWN_PASSWORD},
}


@pytest.mark.parametrize(("role", "permission"), list(itertools.product(Role, Permission)))
def test_each_role_may_do_exactly_what_the_issue_says(role: Role, permission: Permission) -> None:
    assert can(role, permission) is (permission in EXPECTED[role])


@pytest.mark.parametrize(("role", "permission"), list(itertools.product(Role, Permission)))
def test_require_refuses_with_a_403_naming_the_user_role_and_action(
    role: Role, permission: Permission
) -> None:
    if can(role, permission):
        require(role, permission, "alice")
        return
    with pytest.raises(NotPermitted) as refused:
        require(role, permission, "alice")
    assert isinstance(refused.value, Forbidden)
    assert outcome(refused.value).status == 403
    assert refused.value.message == (
        f"not allowed: alice has the {role.text} role, which may not {permission.label}"
        " (ask an administrator)"
    )


def test_without_a_name_the_refusal_speaks_to_the_user() -> None:
    with pytest.raises(
        NotPermitted, match=r"^not allowed: you have the read-only role, which may not deploy"
    ):
        require(Role.READ_ONLY, Permission.DEPLOY)


def test_every_role_and_permission_is_in_the_table_and_roles_only_grow() -> None:
    assert set(GRANTS) == set(Role)
    assert GRANTS[Role.READ_ONLY] < GRANTS[Role.OPERATOR] < GRANTS[Role.ADMINISTRATOR]
    assert GRANTS[Role.ADMINISTRATOR] == frozenset(Permission)
    assert frozenset(Permission) - {Permission.VIEW} == WRITES


def test_an_operator_manages_no_users_and_deletes_no_packages() -> None:
    assert not can(Role.OPERATOR, Permission.MANAGE_USERS)
    assert not can(Role.OPERATOR, Permission.DELETE_PACKAGES)


@pytest.mark.parametrize("role", list(Role))
def test_allowed_lists_the_grants_in_order(role: Role) -> None:
    assert allowed(role) == tuple(p for p in Permission if p in EXPECTED[role])


@pytest.mark.parametrize("role", list(Role))
def test_roles_read_back_from_their_text(role: Role) -> None:
    assert Role.from_text(role.text) is role
    assert role.text == role.value


def test_an_unknown_role_names_the_choices() -> None:
    with pytest.raises(Exception, match="role 'boss' must be one of administrator, operator, read-only"):
        Role.from_text("boss")


ACCOUNTS = [Account(role, enabled) for role in Role for enabled in (True, False)]
AFTER = [*ACCOUNTS, None]


@pytest.mark.parametrize(
    ("before", "after", "administrators"), list(itertools.product(ACCOUNTS, AFTER, range(0, 4)))
)
def test_the_last_active_administrator_always_remains(
    before: Account, after: Account | None, administrators: int
) -> None:
    loses_one = before.active_administrator and not (after is not None and after.active_administrator)
    if loses_one and administrators <= 1:
        with pytest.raises(LastAdministrator, match="'bob' is the last active administrator") as refused:
            ensure_administrator_remains("bob", before, after, administrators)
        assert isinstance(refused.value, Conflict)
        assert outcome(refused.value).status == 409
    else:
        ensure_administrator_remains("bob", before, after, administrators)


@pytest.mark.parametrize(("before", "after"), list(itertools.product(ACCOUNTS, AFTER)))
def test_nobody_removes_disables_or_changes_the_role_of_their_own_account(
    before: Account, after: Account | None
) -> None:
    ensure_not_own_account("bob", "alice", before, after)  # someone else's: always allowed here
    ensure_not_own_account("bob", None, before, after)  # the CLI acts as no console user
    locks_out = after is None or (before.enabled and not after.enabled) or after.role is not before.role
    if locks_out:
        with pytest.raises(NotPermitted, match=r"^you cannot .* your own account"):
            ensure_not_own_account("bob", "bob", before, after)
    else:
        ensure_not_own_account("bob", "bob", before, after)
