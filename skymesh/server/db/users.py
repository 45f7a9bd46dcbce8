"""Repository part for changing a user's role and removing a user (creating users and tokens is in `registry`,
passwords and sessions in `accounts`): each change in one transaction with its audit entry, and never one that
leaves the server without an admin."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from skymesh.core.errors import FailedPrecondition, NotFound
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import ApiTokenRow, UserRow
from skymesh.server.db.records import Role

__all__ = ["UserEditRepo"]

_ADMIN = Role.ADMIN.name.lower()


class UserEditRepo(RepoBase):
    @staticmethod
    async def _lock_user(s: AsyncSession, user_id: str) -> UserRow:
        row = await s.get(UserRow, user_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no user {user_id!r}", field="user_id")
        return row

    @staticmethod
    async def _other_admins(s: AsyncSession, user_id: str) -> int:
        # Lock every admin row: two admins demoting each other at once cannot both succeed.
        rows = (await s.scalars(select(UserRow.user_id).where(UserRow.role == _ADMIN).with_for_update())).all()
        return sum(1 for r in rows if r != user_id)

    async def set_user_role(self, user_id: str, role: Role, *, actor: str = "system") -> None:
        """A user's new role. FailedPrecondition (LAST_ADMIN) when that leaves no admin; NotFound if unknown."""
        now = self._now()
        async with self._tx("set_user_role") as s:
            row = await self._lock_user(s, user_id)
            new = role.name.lower()
            if row.role == new:
                return
            if row.role == _ADMIN and not await self._other_admins(s, user_id):
                raise FailedPrecondition(
                    f"{user_id!r} is the last admin: make another admin first", field="role", reason="LAST_ADMIN"
                )
            self._audit(s, now, actor, "update_user", user_id, role=role.name, previous_role=row.role.upper())
            row.role = new

    async def delete_user(self, user_id: str, *, actor: str = "system") -> int:
        """Remove a user, its tokens and sessions; returns how many of those were still valid. The audit log keeps
        what they did. FailedPrecondition for the actor's own account (SELF) or the last admin (LAST_ADMIN)."""
        now = self._now()
        if actor == f"user:{user_id}":
            raise FailedPrecondition(
                "you cannot remove your own account: ask another admin", field="user_id", reason="SELF"
            )
        async with self._tx("delete_user") as s:
            row = await self._lock_user(s, user_id)
            if row.role == _ADMIN and not await self._other_admins(s, user_id):
                raise FailedPrecondition(f"{user_id!r} is the last admin", field="user_id", reason="LAST_ADMIN")
            valid = int(
                await s.scalar(
                    select(func.count())
                    .select_from(ApiTokenRow)
                    .where(
                        ApiTokenRow.user_id == user_id,
                        ApiTokenRow.revoked_at.is_(None),
                        (ApiTokenRow.expires_at.is_(None)) | (ApiTokenRow.expires_at > now),
                    )
                )
                or 0
            )
            await s.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == user_id))
            await s.delete(row)
            self._audit(s, now, actor, "delete_user", user_id, role=row.role.upper(), revoked_tokens=valid)
            return valid
