"""Use cases of console users, their sessions, and admin API tokens.

Passwords are kept as Argon2 hashes only; session cookies and API tokens as SHA-256 digests only.
Verifying a password takes a deliberate fraction of a second, so it runs outside any transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import ApiToken, User, UserSession
from oco.domain.roles import Account, Role, ensure_administrator_remains, ensure_not_own_account
from oco.domain.throttle import remaining_lockout
from oco.errors import Conflict, InvalidInput, NotFound, TooManyAttempts, Unauthorized
from oco.services import audit, throttle
from oco.services.runtime import Runtime
from oco.services.views import TokenPublic, UserPublic, token_view, user_view

MIN_PASSWORD_LENGTH = 8
TOKEN_BYTES = 32
FIRST_ADMIN = "admin"
"""The name of the console user `ensure_admin` creates."""
WRONG_CREDENTIALS = "wrong user name or password"
WRONG_OLD_PASSWORD = "the current password is wrong"
FAILURE_WRITE_ATTEMPTS = 2
NAME_IN_AUDIT = 255
_hasher = PasswordHasher()
UserRef = int | str
"""A user by id (console and API addresses) or by name (the CLI)."""


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The user of a live console session, as pages need it."""

    user_id: int
    username: str
    full_name: str
    role: Role
    csrf_token: str


@dataclass(frozen=True, slots=True)
class TokenUser:
    """The user an admin API token acts as, with the role that user has now."""

    username: str
    role: Role

    @property
    def actor(self) -> str:
        """Who acts, for the audit log."""
        return f"api:{self.username}"


@dataclass(frozen=True, slots=True)
class UserChanges:
    """What to change of a user; None leaves a field as it is."""

    full_name: str | None = None
    role: Role | None = None
    enabled: bool | None = None


def add_user(
    rt: Runtime,
    username: str,
    password: str,
    actor: str,
    full_name: str = "",
    role: Role = Role.ADMINISTRATOR,
) -> UserPublic:
    """Create a console user with a role."""
    name = username.strip()
    if not name or any(c.isspace() for c in name):
        raise InvalidInput(f"user name {username!r} is not valid", field="username")
    password_hash = _hash_new_password(password)
    with rt.transaction() as session:
        return user_view(_insert_user(session, name, password_hash, actor, full_name.strip(), role))


def show_user(rt: Runtime, user: UserRef) -> UserPublic:
    """One console user."""
    with rt.reading() as session:
        return user_view(_find_user(session, user))


def change_user(rt: Runtime, user: UserRef, changes: UserChanges, actor: str) -> UserPublic:
    """Change a user's full name, role or whether they may log in.

    Disabling a user ends their console sessions and revokes their API tokens (enabling them again
    brings neither back). The last active administrator keeps that role and stays enabled, and nobody
    disables or changes the role of their own account (`oco.domain.roles`).
    """
    with rt.transaction() as session:
        row = _find_user(session, user)
        before = Account(Role(row.role), row.enabled)
        after = Account(
            changes.role if changes.role is not None else before.role,
            changes.enabled if changes.enabled is not None else before.enabled,
        )
        _check_account_change(session, row, before, after, actor)
        changed: dict[str, object] = {}
        if changes.full_name is not None and changes.full_name.strip() != row.full_name:
            row.full_name = changes.full_name.strip()
            changed["full_name"] = row.full_name
        if after.role is not before.role:
            row.role = after.role.text
            changed["role"] = after.role.text
            audit.record(session, actor, "user.role", "user", row.id, username=row.username, role=row.role)
        if after.enabled != before.enabled:
            row.enabled = after.enabled
            if not after.enabled:
                _end_access(session, row, rt)
            action = "user.enable" if after.enabled else "user.disable"
            audit.record(session, actor, action, "user", row.id, username=row.username)
        if "full_name" in changed:
            audit.record(session, actor, "user.change", "user", row.id, username=row.username, **changed)
        session.flush()
        return user_view(row)


def remove_user(rt: Runtime, user: UserRef, actor: str) -> None:
    """Remove a user with their sessions and API tokens; the audit log keeps what they did."""
    with rt.transaction() as session:
        row = _find_user(session, user)
        _check_account_change(session, row, Account(Role(row.role), row.enabled), None, actor)
        audit.record(session, actor, "user.remove", "user", row.id, username=row.username, role=row.role)
        session.delete(row)


def change_own_password(
    rt: Runtime, user_id: int, old_password: str, new_password: str, keep: str, actor: str
) -> None:
    """A user changes their own password, giving the current one; their other console sessions end
    (`keep`, the session cookie in use, stays). InvalidInput names the field that is wrong."""
    password_hash = _hash_new_password(new_password, field="new_password")
    with rt.reading() as session:
        row = session.get(User, user_id)
        if row is None or not row.enabled:
            raise Unauthorized("log in again")
        current_hash = row.password_hash
    try:
        _hasher.verify(current_hash, old_password)
    except (VerificationError, InvalidHashError) as exc:
        raise InvalidInput(WRONG_OLD_PASSWORD, field="old_password") from exc
    with rt.transaction() as session:
        row = session.get(User, user_id)
        if row is None or not row.enabled or row.password_hash != current_hash:
            raise Conflict("the password was changed meanwhile; log in again", field="old_password")
        row.password_hash = password_hash
        session.execute(
            delete(UserSession).where(
                UserSession.user_id == user_id, UserSession.token_hash != hash_token(keep)
            )
        )
        audit.record(session, actor, "user.own-password", "user", row.id, username=row.username)


def ensure_admin(rt: Runtime, actor: str) -> str | None:
    """Create the first console user, `FIRST_ADMIN`, if there is none yet; returns its new password."""
    password = secrets.token_urlsafe(12)
    password_hash = _hasher.hash(password)
    with rt.transaction() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        _insert_user(session, FIRST_ADMIN, password_hash, actor, "Administrator")
    return password


def set_password(rt: Runtime, user: UserRef, password: str, actor: str) -> None:
    """Give a user a new password (an administrator's reset); the user's console sessions end."""
    password_hash = _hash_new_password(password)
    with rt.transaction() as session:
        row = _find_user(session, user)
        row.password_hash = password_hash
        session.execute(delete(UserSession).where(UserSession.user_id == row.id))
        audit.record(session, actor, "user.password", "user", row.id, username=row.username)


def list_users(rt: Runtime) -> list[UserPublic]:
    """Every console user, by name."""
    with rt.reading() as session:
        return [user_view(u) for u in session.scalars(select(User).order_by(User.username))]


def log_in(rt: Runtime, username: str, password: str, address: str = "") -> str:
    """Start a console session for an enabled user with this name and password, from client `address`;
    returns the cookie token (only its hash is stored).

    One vague Unauthorized for every wrong name or password, counted against the name and the address
    (`oco.domain.throttle`, with an audit entry); TooManyAttempts, without checking the password, while
    either is locked out. The password is verified (Argon2, a deliberate fraction of a second) between
    two short units of work, so it never holds the database's write lock.
    """
    name = username.strip()
    counted = throttle.subjects(name, address)
    with rt.reading() as session:
        user = session.scalar(select(User).where(User.username == name))
        known = None if user is None or not user.enabled else (user.id, user.password_hash)
        counts = throttle.load_counts(session, counted)
    now = rt.now()
    locked = max((remaining_lockout(count, now) for count in counts.values()), default=0.0)
    if locked:
        raise TooManyAttempts(
            f"too many failed logins for this user name or address: retry in {locked:.0f} s",
            retry_after=int(locked),
        )
    if known is None or not _password_matches(known[1], password):
        _count_failure(rt, counted, name, address, known[0] if known else None)
        raise Unauthorized(WRONG_CREDENTIALS)
    user_id, password_hash = known
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(password_hash) else None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with rt.transaction() as session:
        user = session.get(User, user_id)
        if user is None or not user.enabled:
            raise Unauthorized(WRONG_CREDENTIALS)
        if rehashed is not None:
            user.password_hash = rehashed
        user.last_login = now
        throttle.clear(session, counted)
        session.add(
            UserSession(
                token_hash=hash_token(token),
                user_id=user.id,
                csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                created=now,
                expires=now + timedelta(seconds=rt.settings.session_max_age_seconds),
            )
        )
    return token


def _password_matches(password_hash: str | None, password: str) -> bool:
    """Argon2 verification; without a hash (no such user) the same work is done, and it fails."""
    if password_hash is None:
        _hasher.hash(password)  # spend the same time whether or not the user exists
        return False
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(
    rt: Runtime, counted: list[throttle.Subject], name: str, address: str, user_id: int | None
) -> None:
    """Count a failed login against its name and address, with an audit entry, in one short transaction.

    Two processes counting the first failure of a name at once both insert it: the loser counts again.
    """
    policy = throttle.policy_of(rt.settings)
    for attempt in range(FAILURE_WRITE_ATTEMPTS):
        try:
            with rt.transaction() as session:
                now = rt.now()
                counts = throttle.record_failure(session, counted, now, policy)
                locked = max((remaining_lockout(count, now) for count in counts.values()), default=0.0)
                audit.record(
                    session,
                    f"client:{address}" if address else "client",
                    "user.login_failure",
                    "user",
                    user_id,
                    username=name[:NAME_IN_AUDIT],
                    address=address,
                    failures=max(count.failures for count in counts.values()),
                    locked_seconds=int(locked),
                )
            return
        except Conflict:
            if attempt == FAILURE_WRITE_ATTEMPTS - 1:
                raise


def session_user(rt: Runtime, token: str) -> SessionUser | None:
    """The user of a live console session cookie, or None."""
    with rt.reading() as session:
        row = session.scalar(
            select(UserSession)
            .where(UserSession.token_hash == hash_token(token))
            .options(selectinload(UserSession.user))
        )
        if row is None or row.expires <= rt.now() or not row.user.enabled:
            return None
        user = row.user
        return SessionUser(row.user_id, user.username, user.full_name, Role(user.role), row.csrf_token)


def log_out(rt: Runtime, token: str) -> None:
    """End the console session of a cookie token (nothing happens for an unknown one)."""
    with rt.transaction() as session:
        session.execute(delete(UserSession).where(UserSession.token_hash == hash_token(token)))


def create_token(rt: Runtime, username: str, name: str, actor: str) -> str:
    """A new admin API bearer token acting as `username`; the clear text is returned once, never stored."""
    if not name.strip():
        raise InvalidInput("token name must not be empty", field="name")
    token = "oco_" + secrets.token_urlsafe(TOKEN_BYTES)
    with rt.transaction() as session:
        user = _find_user(session, username)
        row = ApiToken(name=name.strip(), token_hash=hash_token(token), user_id=user.id)
        session.add(row)
        session.flush()
        audit.record(session, actor, "token.create", "api_token", row.id, name=row.name)
    return token


def token_user(rt: Runtime, token: str) -> TokenUser:
    """The user a bearer token acts as, with their role now, noting its use; Unauthorized for an
    unknown or revoked token or a disabled user."""
    with rt.transaction() as session:
        row = session.scalar(
            select(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .options(selectinload(ApiToken.user))
        )
        if row is None or row.revoked is not None or not row.user.enabled:
            raise Unauthorized("invalid or revoked API token")
        row.last_used = rt.now()
        return TokenUser(row.user.username, Role(row.user.role))


def revoke_token(rt: Runtime, token_id: int, actor: str) -> None:
    """Revoke an admin API token; it is refused from now on (revoking twice keeps the first time)."""
    with rt.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"API token {token_id} does not exist")
        row.revoked = row.revoked or rt.now()
        audit.record(session, actor, "token.revoke", "api_token", token_id, name=row.name)


def list_tokens(rt: Runtime) -> list[TokenPublic]:
    """Every admin API token (never its secret), oldest first."""
    with rt.reading() as session:
        query = select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id)
        return [token_view(t) for t in session.scalars(query)]


def hash_token(token: str) -> str:
    """The stored form of a session cookie or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _hash_new_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field=field)
    return _hasher.hash(password)


def _insert_user(
    session: Session,
    name: str,
    password_hash: str,
    actor: str,
    full_name: str,
    role: Role = Role.ADMINISTRATOR,
) -> User:
    if session.scalar(select(User.id).where(User.username == name)):
        raise Conflict(f"user {name!r} already exists", field="username")
    user = User(username=name, full_name=full_name, password_hash=password_hash, role=role.text)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id, username=name, role=role.text)
    return user


def _find_user(session: Session, user: UserRef) -> User:
    if isinstance(user, int):
        row = session.get(User, user)
        if row is None:
            raise NotFound(f"user {user} does not exist")
        return row
    row = session.scalar(select(User).where(User.username == user.strip()))
    if row is None:
        raise NotFound(f"user {user!r} does not exist")
    return row


def _check_account_change(
    session: Session, row: User, before: Account, after: Account | None, actor: str
) -> None:
    """The rules of `oco.domain.roles` on a change of `row`; the active administrators are locked
    until the end of the transaction, so two administrators cannot demote each other at once."""
    ensure_not_own_account(row.username, audit.acting_user(actor), before, after)
    if before.active_administrator:
        active = session.scalars(
            select(User.id)
            .where(User.role == Role.ADMINISTRATOR.text, User.enabled.is_(True))
            .with_for_update()
        ).all()
        ensure_administrator_remains(row.username, before, after, len(active))


def _end_access(session: Session, row: User, rt: Runtime) -> None:
    """End a user's console sessions and revoke their API tokens."""
    session.execute(delete(UserSession).where(UserSession.user_id == row.id))
    for token in session.scalars(
        select(ApiToken).where(ApiToken.user_id == row.id, ApiToken.revoked.is_(None))
    ):
        token.revoked = rt.now()
