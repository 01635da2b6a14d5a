"""Console users (控制台用户) and sign-in sessions: create, disable, reset password, sign in with
lockout, sign out. Every change runs in the caller's unit of work and is audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from siyu.bootstrap import App
from siyu.console import passwords
from siyu.console.models import ConsoleSession, ConsoleUser
from siyu.console.permissions import ROLES
from siyu.core.errors import NotFoundError, SiyuError
from siyu.store.uow import UnitOfWork

MAX_FAILURES = 5
LOCK_FOR = dt.timedelta(minutes=15)
SESSION_FOR = dt.timedelta(hours=12)
# Roles that see every brand of the group; the others must name their brand.
GROUP_ROLES = frozenset({"group_admin", "auditor"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class UserError(SiyuError):
    code = "bad_user"
    exit_code = 2


class LoginError(SiyuError):
    """Wrong e-mail or password, a disabled user or a locked one: the same answer for all of them,
    apart from the lock, so the form does not tell which e-mails exist."""

    code = "login_failed"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    brand: str | None
    store: str | None
    staff_id: str | None


def _user(row: ConsoleUser) -> User:
    return User(row.id, row.email, row.role, row.brand, row.store, row.staff_id)


def _public(row: ConsoleUser) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "role": row.role,
        "brand": row.brand,
        "store": row.store,
        "staff_id": row.staff_id,
        "disabled": row.disabled,
        "locked_until": row.locked_until,
        "created_at": row.created_at,
        "last_login_at": row.last_login_at,
    }


def _audited(row: ConsoleUser) -> dict[str, Any]:
    return {k: v for k, v in _public(row).items() if k in ("role", "brand", "store", "staff_id", "disabled")}


def check_password(password: str) -> None:
    if len(password) < passwords.MIN_LENGTH:
        raise UserError(f"the password needs at least {passwords.MIN_LENGTH} characters (密码至少 10 位)")


def do_create_user(
    uow: UnitOfWork,
    email: str,
    role: str,
    password: str,
    *,
    brand: str | None = None,
    store: str | None = None,
    staff_id: str | None = None,
) -> dict[str, Any]:
    """A new console user. Brand-level roles need --brand; store managers --store; guides --staff."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"{email!r} is not an e-mail address (邮箱格式不正确)")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)} (角色无效)")
    if role not in GROUP_ROLES and not brand:
        raise UserError(f"role {role} works within one brand: pass --brand (请指定品牌)")
    if role == "store_manager" and not store:
        raise UserError("a store_manager needs --store (店长需指定门店)")
    if role == "guide" and not staff_id:
        raise UserError("a guide needs --staff, their staff id (导购需指定员工号)")
    check_password(password)
    if uow.session.scalar(select(ConsoleUser).where(ConsoleUser.email == email)) is not None:
        raise UserError(f"a user {email} exists already (用户已存在); use `siyu users reset-password`")
    row = ConsoleUser(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=passwords.hash_password(password),
        role=role,
        brand=brand,
        store=store,
        staff_id=staff_id,
        disabled=False,
        failed_attempts=0,
        created_at=uow.now,
    )
    uow.session.add(row)
    uow.audit("user.create", "console_user", email, brand=brand, after=_audited(row))
    return _public(row)


def _find(uow: UnitOfWork, email: str) -> ConsoleUser:
    row = uow.session.scalar(select(ConsoleUser).where(ConsoleUser.email == email.strip().lower()))
    if row is None:
        raise NotFoundError(f"no console user {email!r} (用户不存在); see `siyu users list`")
    return row


def do_disable_user(uow: UnitOfWork, email: str) -> dict[str, Any]:
    """Disable a user and end their sessions at once."""
    row = _find(uow, email)
    before = _audited(row)
    row.disabled = True
    uow.session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == row.id))
    uow.audit("user.disable", "console_user", row.email, brand=row.brand, before=before, after=_audited(row))
    return _public(row)


def do_reset_password(uow: UnitOfWork, email: str, password: str) -> dict[str, Any]:
    """A new password; unlocks the user and ends their sessions."""
    check_password(password)
    row = _find(uow, email)
    row.password_hash = passwords.hash_password(password)
    row.failed_attempts = 0
    row.locked_until = None
    uow.session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == row.id))
    uow.audit("user.reset_password", "console_user", row.email, brand=row.brand)
    return _public(row)


def list_users(app: App, brand: str | None = None) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        query = select(ConsoleUser).order_by(ConsoleUser.email)
        if brand:
            query = query.where(ConsoleUser.brand == brand)
        return [_public(r) for r in session.scalars(query)]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def do_login(uow: UnitOfWork, email: str, password: str) -> tuple[str, User] | LoginError:
    """Check the password and open a session; returns the cookie token. After MAX_FAILURES wrong
    passwords in a row the user is locked for LOCK_FOR (even the right password is refused).
    A failure is returned, not raised: the failure count must be committed; the caller raises it."""
    row = uow.session.scalar(select(ConsoleUser).where(ConsoleUser.email == email.strip().lower()))
    if row is not None and row.locked_until is not None and _aware(row.locked_until) > uow.now:
        return LoginError(
            "too many failed sign-ins: this account is locked for 15 minutes (账号已锁定，请 15 分钟后再试)"
        )
    if row is None or row.disabled or not passwords.verify(row.password_hash, password):
        if row is not None and not row.disabled:
            row.failed_attempts += 1
            if row.failed_attempts >= MAX_FAILURES:
                row.locked_until = uow.now + LOCK_FOR
                row.failed_attempts = 0
                uow.audit("user.lock", "console_user", row.email, brand=row.brand)
        return LoginError("wrong e-mail or password (邮箱或密码错误)")
    row.failed_attempts = 0
    row.locked_until = None
    row.last_login_at = uow.now
    token = secrets.token_urlsafe(32)
    uow.session.add(
        ConsoleSession(
            token_hash=_digest(token),
            user_id=row.id,
            csrf=secrets.token_urlsafe(24),
            created_at=uow.now,
            expires_at=uow.now + SESSION_FOR,
        )
    )
    uow.audit("user.login", "console_user", row.email, brand=row.brand)
    return token, _user(row)


def session_of(app: App, token: str, now: dt.datetime) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token, or None (unknown, expired or disabled)."""
    with app.store.unit_of_work() as session:
        found = session.execute(
            select(ConsoleSession, ConsoleUser)
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.token_hash == _digest(token))
        ).first()
        if found is None:
            return None
        sess, row = found
        if row.disabled or _aware(sess.expires_at) <= now:
            return None
        return _user(row), sess.csrf


def do_logout(uow: UnitOfWork, token: str) -> None:
    uow.session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
