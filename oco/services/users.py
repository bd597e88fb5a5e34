"""Use cases of console users and admin API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oco.db.models import ApiToken, User, UserSession
from oco.db.types import utcnow
from oco.services import audit
from oco.services.errors import Conflict, InvalidInput, NotFound, Unauthorized

MIN_PASSWORD_LENGTH = 8
TOKEN_BYTES = 32
_hasher = PasswordHasher()


def add_user(session: Session, username: str, password: str, actor: str, full_name: str = "") -> User:
    """Create a console user; the password is kept as an Argon2 hash only."""
    name = username.strip()
    if not name or any(c.isspace() for c in name):
        raise InvalidInput(f"user name {username!r} is not valid", field="username")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if session.scalar(select(User.id).where(User.username == name)):
        raise Conflict(f"user {name!r} already exists", field="username")
    user = User(username=name, full_name=full_name, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id, username=name)
    return user


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    """The enabled user with this name and password; one vague error for every failure."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.enabled:
        _hasher.hash(password)  # spend the same time whether or not the user exists
        raise Unauthorized("wrong user name or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise Unauthorized("wrong user name or password") from exc
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login = utcnow()
    return user


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, max_age_seconds: int) -> tuple[str, UserSession]:
    """A new console session; returns the cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = UserSession(
        token_hash=hash_token(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
        expires=utcnow() + timedelta(seconds=max_age_seconds),
    )
    session.add(row)
    session.flush()
    return token, row


def resolve_session(session: Session, token: str) -> UserSession | None:
    """The live console session of a cookie token, or None."""
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(token)))
    if row is None or row.expires <= utcnow() or not row.user.enabled:
        return None
    return row


def end_session(session: Session, token: str) -> None:
    session.execute(UserSession.__table__.delete().where(UserSession.token_hash == hash_token(token)))


def create_token(session: Session, user: User, name: str, actor: str) -> tuple[str, ApiToken]:
    """A new admin API bearer token; the clear text is returned once and never stored."""
    if not name.strip():
        raise InvalidInput("token name must not be empty", field="name")
    token = "oco_" + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(name=name.strip(), token_hash=hash_token(token), user_id=user.id)
    session.add(row)
    session.flush()
    audit.record(session, actor, "token.create", "api_token", row.id, name=row.name)
    return token, row


def resolve_token(session: Session, token: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked is not None or not row.user.enabled:
        raise Unauthorized("invalid or revoked API token")
    row.last_used = utcnow()
    return row


def revoke_token(session: Session, token_id: int, actor: str) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"API token {token_id} does not exist")
    row.revoked = row.revoked or utcnow()
    audit.record(session, actor, "token.revoke", "api_token", token_id, name=row.name)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def set_password(session: Session, user: User, password: str, actor: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    user.password_hash = _hasher.hash(password)
    session.execute(UserSession.__table__.delete().where(UserSession.user_id == user.id))
    audit.record(session, actor, "user.password", "user", user.id)
