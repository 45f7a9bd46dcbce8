"""Human accounts beyond roles and tokens: argon2id password hashes, login sessions (short-lived user tokens),
labelled personal tokens, logout, and reading the audit log.

A session is an `api_tokens` row with `expires_at` set; `authenticate_user` refuses it once expired. Every change
here is audited in the same transaction. Imports only the persistence layer and `skymesh.core`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from skymesh.core.errors import InvalidArgument, NotFound, Unauthenticated
from skymesh.server.db.base import RepoBase, hash_secret, new_secret
from skymesh.server.db.models import ApiTokenRow, AuditRow, UserRow
from skymesh.server.db.records import Role
from skymesh.server.db.registry import USER_TOKEN_PREFIX, split_credential

__all__ = ["AccountsRepo", "AuditEntryRecord", "SessionToken"]

_HASHER = PasswordHasher()
# Verified against when the user is unknown or has no password, so a miss costs the same as a wrong password.
_DUMMY_PASSWORD_HASH = _HASHER.hash("no-such-user")
_MIN_PASSWORD = 8
_MAX_PASSWORD = 256
_BAD_LOGIN = "wrong username or password"


@dataclass(frozen=True)
class SessionToken:
    token: str
    token_id: str
    user_id: str
    role: Role
    expires_at: datetime | None


@dataclass(frozen=True)
class AuditEntryRecord:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]


class AccountsRepo(RepoBase):
    async def set_password(self, user_id: str, password: str, *, actor: str = "system") -> None:
        if not _MIN_PASSWORD <= len(password) <= _MAX_PASSWORD:
            raise InvalidArgument(f"must be {_MIN_PASSWORD}-{_MAX_PASSWORD} characters", field="password")
        hashed = _HASHER.hash(password)
        now = self._now()
        async with self._tx("set_password") as s:
            row = await s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}", field="user_id")
            row.password_hash = hashed
            self._audit(s, now, actor, "set_password", user_id)

    async def login(self, username: str, password: str, ttl_s: float) -> SessionToken:
        """A session token for a correct password; Unauthenticated (one message for every miss) otherwise."""
        async with self._tx("login_lookup") as s:
            row = await s.get(UserRow, username) if username else None
            stored = row.password_hash if row is not None and row.password_hash else None
        try:
            _HASHER.verify(stored or _DUMMY_PASSWORD_HASH, password)
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            raise Unauthenticated(_BAD_LOGIN, reason="BAD_LOGIN")
        return await self._issue(row.user_id, Role[row.role.upper()], ttl_s=ttl_s, label="login", actor=row.user_id)

    async def issue_personal_token(self, user_id: str, label: str) -> SessionToken:
        async with self._tx("personal_token_lookup") as s:
            row = await s.get(UserRow, user_id)
        if row is None:
            raise NotFound(f"no user {user_id!r}", field="user_id")
        return await self._issue(user_id, Role[row.role.upper()], ttl_s=None, label=label, actor=f"user:{user_id}")

    async def _issue(self, user_id: str, role: Role, *, ttl_s: float | None, label: str, actor: str) -> SessionToken:
        now = self._now()
        token_id = secrets.token_hex(8)
        secret = new_secret()
        expires = now + timedelta(seconds=ttl_s) if ttl_s is not None else None
        async with self._tx("issue_token") as s:
            s.add(
                ApiTokenRow(
                    token_id=token_id,
                    user_id=user_id,
                    secret_sha256=hash_secret(secret),
                    created_at=now,
                    expires_at=expires,
                    label=label,
                )
            )
            action = "login" if ttl_s is not None else "issue_personal_token"
            self._audit(s, now, actor, action, user_id, token_id=token_id, label=label)
        return SessionToken(f"{USER_TOKEN_PREFIX}{token_id}_{secret}", token_id, user_id, role, expires)

    async def revoke_token(self, token: str, *, actor: str) -> None:
        """Logout: revoke the token given (already authenticated by the caller's interceptor)."""
        token_id, _secret = split_credential(token, USER_TOKEN_PREFIX)
        now = self._now()
        async with self._tx("revoke_token") as s:
            row = await s.get(ApiTokenRow, token_id)
            if row is None:
                raise Unauthenticated("invalid or revoked token")
            if row.revoked_at is None:
                row.revoked_at = now
                action = "logout" if row.expires_at else "revoke_token"
                self._audit(s, now, actor, action, row.user_id, token_id=token_id)

    async def list_audit(self, *, limit: int, before_id: int = 0, actor: str = "") -> list[AuditEntryRecord]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if before_id > 0:
            query = query.where(AuditRow.id < before_id)
        if actor:
            query = query.where(AuditRow.actor == actor)
        async with self._tx("list_audit") as s:
            rows = (await s.scalars(query)).all()
        return [AuditEntryRecord(r.id, r.at, r.actor, r.action, r.subject, dict(r.detail or {})) for r in rows]
