"""Console users on every database: roles, disabling, removal, password changes, and what the audit log
keeps of them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from oco.db.models import ApiToken, UserSession
from oco.domain.errors import LastAdministrator, NotPermitted
from oco.domain.roles import Role
from oco.errors import Conflict, InvalidInput, NotFound, Unauthorized
from oco.services import audit, users
from oco.services.audit import AuditQuery
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from oco.services.users import UserChanges

PASSWORD = "a long password"


def entries(rt: Runtime, **query: object) -> list[tuple[str | None, Role | None, str]]:
    page = audit.search_audit(rt, AuditQuery(**query), PageRequest(page_size=100))  # type: ignore[arg-type]
    return [(e.username, e.role, e.action) for e in reversed(page.items)]


def test_a_user_is_added_with_a_role_and_listed_with_it(rt: Runtime) -> None:
    users.add_user(rt, "ada", PASSWORD, "cli:root", "Ada", Role.OPERATOR)
    users.add_user(rt, "bob", PASSWORD, "cli:root")
    assert [(u.username, u.role, u.enabled) for u in users.list_users(rt)] == [
        ("ada", Role.OPERATOR, True),
        ("bob", Role.ADMINISTRATOR, True),
    ]
    assert users.show_user(rt, "ada").full_name == "Ada"


def test_the_last_active_administrator_cannot_be_disabled_removed_or_demoted(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    users.add_user(rt, "ops", PASSWORD, "tests", role=Role.OPERATOR)
    message = "'root' is the last active administrator: make another user an administrator first"
    for change in (UserChanges(enabled=False), UserChanges(role=Role.OPERATOR)):
        with pytest.raises(LastAdministrator, match=message):
            users.change_user(rt, "root", change, "cli:someone")
    with pytest.raises(LastAdministrator, match=message):
        users.remove_user(rt, "root", "cli:someone")
    assert users.show_user(rt, "root").role is Role.ADMINISTRATOR and users.show_user(rt, "root").enabled

    users.change_user(rt, "ops", UserChanges(role=Role.ADMINISTRATOR), "web:root")
    users.change_user(rt, "root", UserChanges(role=Role.READ_ONLY), "web:ops")  # another one remains
    assert users.show_user(rt, "root").role is Role.READ_ONLY


def test_a_disabled_administrator_does_not_count(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    users.add_user(rt, "old", PASSWORD, "tests")
    users.change_user(rt, "old", UserChanges(enabled=False), "web:root")
    with pytest.raises(LastAdministrator):
        users.remove_user(rt, "root", "cli:someone")
    users.remove_user(rt, "old", "web:root")  # a disabled administrator can go


def test_nobody_disables_removes_or_demotes_their_own_account(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    users.add_user(rt, "other", PASSWORD, "tests")
    with pytest.raises(NotPermitted, match="cannot disable your own account"):
        users.change_user(rt, "root", UserChanges(enabled=False), "web:root")
    with pytest.raises(NotPermitted, match="cannot change the role of your own account"):
        users.change_user(rt, "root", UserChanges(role=Role.OPERATOR), "api:root")
    with pytest.raises(NotPermitted, match="cannot remove your own account"):
        users.remove_user(rt, "root", "web:root")
    users.change_user(rt, "root", UserChanges(full_name="The Root"), "web:root")  # the name is fine
    assert users.show_user(rt, "root").full_name == "The Root"


def test_disabling_ends_sessions_and_revokes_tokens_for_good(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    users.add_user(rt, "eve", PASSWORD, "tests", role=Role.OPERATOR)
    cookie = users.log_in(rt, "eve", PASSWORD)
    token = users.create_token(rt, "eve", "script", "tests")
    assert users.token_user(rt, token).role is Role.OPERATOR

    users.change_user(rt, "eve", UserChanges(enabled=False), "web:root")

    assert users.session_user(rt, cookie) is None
    with pytest.raises(Unauthorized):
        users.token_user(rt, token)
    with pytest.raises(Unauthorized):
        users.log_in(rt, "eve", PASSWORD)
    users.change_user(rt, "eve", UserChanges(enabled=True), "web:root")
    with pytest.raises(Unauthorized):
        users.token_user(rt, token)  # enabling again brings no token back
    assert users.session_user(rt, cookie) is None
    with rt.reading() as session:
        assert session.scalars(select(UserSession)).all() == []
        assert all(t.revoked is not None for t in session.scalars(select(ApiToken)))


def test_removing_a_user_takes_their_sessions_and_tokens_the_audit_log_keeps_their_deeds(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    users.add_user(rt, "tmp", PASSWORD, "tests", role=Role.OPERATOR)
    users.log_in(rt, "tmp", PASSWORD)
    users.create_token(rt, "tmp", "script", "tests")
    users.create_token(rt, "root", "root's", "web:tmp")

    users.remove_user(rt, "tmp", "web:root")

    with pytest.raises(NotFound, match="user 'tmp' does not exist"):
        users.show_user(rt, "tmp")
    with rt.reading() as session:
        assert session.scalars(select(UserSession)).all() == []
        assert [t.name for t in session.scalars(select(ApiToken))] == ["root's"]
    assert entries(rt, username="tmp") == [("tmp", Role.OPERATOR, "token.create")]
    assert entries(rt, username="root")[-1] == ("root", Role.ADMINISTRATOR, "user.remove")


def test_a_user_changes_their_own_password_with_the_current_one(rt: Runtime) -> None:
    users.add_user(rt, "ada", PASSWORD, "tests", role=Role.READ_ONLY)
    here = users.log_in(rt, "ada", PASSWORD)
    elsewhere = users.log_in(rt, "ada", PASSWORD)
    ada = users.session_user(rt, here)
    assert ada is not None and ada.role is Role.READ_ONLY

    with pytest.raises(InvalidInput, match="the current password is wrong") as wrong:
        users.change_own_password(rt, ada.user_id, "not it at all", "a new long password", here, "web:ada")
    assert wrong.value.field == "old_password"
    with pytest.raises(InvalidInput, match="at least 8 characters") as short:
        users.change_own_password(rt, ada.user_id, PASSWORD, "short", here, "web:ada")
    assert short.value.field == "new_password"
    users.log_in(rt, "ada", PASSWORD)  # refused attempts changed nothing

    users.change_own_password(rt, ada.user_id, PASSWORD, "a new long password", here, "web:ada")

    assert users.session_user(rt, here) is not None
    assert users.session_user(rt, elsewhere) is None
    with pytest.raises(Unauthorized):
        users.log_in(rt, "ada", PASSWORD)
    users.log_in(rt, "ada", "a new long password")
    assert entries(rt, username="ada") == [("ada", Role.READ_ONLY, "user.own-password")]


def test_the_audit_log_names_the_user_and_role_of_each_change_and_filters_by_them(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "cli:root")
    users.add_user(rt, "ops", PASSWORD, "web:root", role=Role.OPERATOR)
    users.change_user(rt, "ops", UserChanges(role=Role.READ_ONLY), "api:root")
    users.set_password(rt, "ops", "another long password", "web:root")
    users.change_user(rt, "ops", UserChanges(enabled=False), "web:root")

    assert entries(rt) == [
        (None, None, "user.create"),
        ("root", Role.ADMINISTRATOR, "user.create"),
        ("root", Role.ADMINISTRATOR, "user.role"),
        ("root", Role.ADMINISTRATOR, "user.password"),
        ("root", Role.ADMINISTRATOR, "user.disable"),
    ]
    assert [a for _, _, a in entries(rt, username="root", action="user.role")] == ["user.role"]
    assert len(entries(rt, role=Role.ADMINISTRATOR)) == 4
    assert entries(rt, role=Role.OPERATOR) == []
    page = audit.search_audit(rt, AuditQuery(action="user.role"), PageRequest())
    assert page.items[0].details == {"username": "ops", "role": "read-only"}
    assert page.items[0].actor == "api:root"


def test_a_duplicate_or_blank_user_is_refused(rt: Runtime) -> None:
    users.add_user(rt, "root", PASSWORD, "tests")
    with pytest.raises(Conflict, match="already exists"):
        users.add_user(rt, "root", PASSWORD, "tests", role=Role.READ_ONLY)
    with pytest.raises(InvalidInput, match="is not valid"):
        users.add_user(rt, "two words", PASSWORD, "tests")
    with pytest.raises(NotFound, match="user 42 does not exist"):
        users.change_user(rt, 42, UserChanges(enabled=False), "tests")
