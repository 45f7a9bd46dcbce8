"""Who is calling: station API keys for the agent service, user tokens and roles for everything else.

Agents are authenticated at the start of each RPC (`authenticate_station`), because the stream handler needs the
station identity. Every other call goes through `ControlAuthInterceptor`, which is deny-by-default: apart from the
agent service (station keys, checked by its handlers) and gRPC health checking (load balancers and orchestrators
probe it without credentials), each method needs a user token whose role covers it, whatever the handler's
streaming shape. That includes server reflection, which would otherwise hand an anonymous caller the whole API.
The caller's name is available to the servicer as `current_actor()` for the audit log.

`StationKeys` does the same for station API keys (agents reconnecting in a storm), and batches its misses.

`VerifiedTokenCache` keeps a verified user token for a few seconds (keyed by the SHA-256 of the whole presented
token, so a wrong secret is a different key and goes to the database), which saves every control RPC its own
database lookup. Revoking, logging out, deleting a user, changing a role or a password through this process clears
it at once; elsewhere (another replica, the CLI on the database) the TTL bounds how long a revoked token still works.

`bootstrap_admin` gives a fresh database its first admin and writes that user's token to an owner-only file, so
the control API can be authenticated on every address from the very first start without a default password.

Imports grpc, the error choke point and the repository; never the servicers.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc

from skymesh.api.errors import abort_with
from skymesh.core.errors import AlreadyExists, PermissionDenied, SkyMeshError, Unauthenticated, Unavailable
from skymesh.server.db import Repository
from skymesh.server.db.records import Role, UserRecord
from skymesh.server.groupcommit import GroupCommitter

__all__ = [
    "ADMIN_USER",
    "ControlAuthInterceptor",
    "StationKeys",
    "VerifiedCredentialCache",
    "VerifiedTokenCache",
    "authenticate_station",
    "bearer_token",
    "bootstrap_admin",
    "current_actor",
    "required_role",
    "write_owner_only",
]

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("skymesh_actor", default="system")
# Authenticated by their own handlers (station keys) or deliberately open (health probes).
_AGENT_PREFIX = "/skymesh.api.agent."
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
_REFLECTION_PREFIX = "/grpc.reflection."
_ADMIN_METHODS = frozenset(
    {
        "CreateStation",
        "UpdateStation",
        "DeleteStation",
        "IssueStationKey",
        "RevokeStationKey",
        "CreateUser",
        "ListUsers",
        "IssueUserToken",
        "RevokeUserToken",
        "UpdateUser",
        "DeleteUser",
        "SetPassword",
        "ListAuditEntries",
    }
)
# Any signed-in user, whatever the name suggests.
_OBSERVER_METHODS = frozenset({"Watch", "WhoAmI", "Logout", "CreatePersonalToken", "DownloadArtifact"})
# Callable without a token: the password is the credential.
_PUBLIC_METHODS = frozenset({"/skymesh.api.control.v1.AuthService/Login"})
# Calls that may make a cached verification wrong (a token revoked, a user gone or demoted): the cache is cleared
# before and after each, whatever its outcome.
_CREDENTIAL_METHODS = frozenset({"Logout", "RevokeUserToken", "UpdateUser", "DeleteUser", "SetPassword"})
TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_SIZE = 1024
STATION_KEY_CACHE_SIZE = 20_000
_T = TypeVar("_T")


def current_actor() -> str:
    """The authenticated caller of the control RPC being served ("user:<id>", or "local" without control auth)."""
    return _ACTOR.get()


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Unauthenticated("missing credentials: send metadata 'authorization: Bearer <token>'")


async def authenticate_station(
    repo: Repository, context: grpc.aio.ServicerContext[Any, Any], keys: StationKeys | None = None
) -> tuple[str, str]:
    """(station_id, key_id) of the calling agent (through `keys` when given); raises Unauthenticated."""
    token = bearer_token(context)
    station_id, key_id = await (keys.authenticate(token) if keys is not None else repo.authenticate_station(token))
    names = peer_certificate_names(context)
    if names and station_id not in names:
        # Under mutual TLS the certificate is the station's identity too: a key must travel with its own station's
        # certificate, so a stolen key alone (or a certificate alone) speaks for nobody.
        raise PermissionDenied(f"the client certificate names {sorted(names)}, not station {station_id!r}")
    return station_id, key_id


def peer_certificate_names(context: grpc.aio.ServicerContext[Any, Any]) -> frozenset[str]:
    """The common name and DNS names of the caller's verified client certificate (empty without mutual TLS)."""
    auth = context.auth_context() or {}
    names = [*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ())]
    return frozenset(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def required_role(method: str) -> Role:
    """The least role that may call `method` ("/package.Service/Method")."""
    if method.startswith(_REFLECTION_PREFIX):
        return Role.OBSERVER
    name = method.rsplit("/", 1)[-1]
    if name in _ADMIN_METHODS:
        return Role.ADMIN
    if name.startswith(("Get", "List")) or name in _OBSERVER_METHODS:
        return Role.OBSERVER
    return Role.OPERATOR


def _guarded(method: str) -> bool:
    return not method.startswith((_AGENT_PREFIX, *_OPEN_PREFIXES)) and method not in _PUBLIC_METHODS


class VerifiedCredentialCache(Generic[_T]):
    """Credentials `verify` accepted in the last `ttl_s` seconds, at most `max_size` of them.

    Only successes are kept, under the SHA-256 of the whole credential (the plaintext is never held). `clear()` bumps
    a generation: a lookup that began before a clear does not store its (possibly stale) answer after it.
    """

    def __init__(
        self,
        verify: Callable[[str], Awaitable[_T]],
        *,
        ttl_s: float = TOKEN_CACHE_TTL_S,
        max_size: int = TOKEN_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verify = verify
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[bytes, tuple[float, _T]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def authenticate(self, token: str) -> _T:
        """What `verify` says of the credential, from the cache when verified within the TTL; raises as it does."""
        key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._entries[key]
        generation = self._generation
        answer = await self._verify(token)  # raises on a wrong, revoked or expired credential
        if self._ttl_s > 0 and generation == self._generation:
            if len(self._entries) >= self._max_size:
                self._evict(now)
            self._entries[key] = (now + self._ttl_s, answer)
        return answer

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max_size:  # all live: drop the oldest insertions
            del self._entries[next(iter(self._entries))]


class VerifiedTokenCache(VerifiedCredentialCache[UserRecord]):
    """User tokens (the control API), verified by the repository."""

    def __init__(
        self,
        repo: Repository,
        *,
        ttl_s: float = TOKEN_CACHE_TTL_S,
        max_size: int = TOKEN_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(repo.authenticate_user, ttl_s=ttl_s, max_size=max_size, clock=clock)


class StationKeys(VerifiedCredentialCache[tuple[str, str]]):
    """Station API keys -> (station_id, key_id): verified keys are kept for the same TTL as user tokens, and the
    misses of many streams at once (a reconnect storm) share one read (`GroupCommitter` over
    `Repository.authenticate_stations`), shedding with UNAVAILABLE when too many wait. RevokeStationKey and
    DeleteStation on this process `clear()` it; a revocation elsewhere takes effect within the TTL for new streams
    (open ones re-check at `key_recheck_s`)."""

    def __init__(
        self,
        repo: Repository,
        *,
        ttl_s: float = TOKEN_CACHE_TTL_S,
        max_size: int = STATION_KEY_CACHE_SIZE,
        max_queued: int = 20_000,
        retry_after_s: float = 2.0,
    ) -> None:
        self.lookups = GroupCommitter(
            repo,
            write=repo.authenticate_stations,
            max_group=500,
            max_queued=max_queued,
            retry_after_s=retry_after_s,
            linger_s=0.005,
            overload_reason="CONNECT_OVERLOADED",
        )
        super().__init__(self._lookup, ttl_s=ttl_s, max_size=max_size)

    async def _lookup(self, api_key: str) -> tuple[str, str]:
        answer: tuple[str, str] = await self.lookups.submit("", "", 0, api_key)
        return answer


class ControlAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks user tokens and roles on every method but the agent service and health checks (see the module doc)."""

    def __init__(self, repo: Repository, *, required: bool, token_cache_ttl_s: float = TOKEN_CACHE_TTL_S) -> None:
        self._repo = repo
        self._required = required
        self.tokens = VerifiedTokenCache(repo, ttl_s=token_cache_ttl_s)

    async def _authorize(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> str:
        if not self._required:
            return "local"
        try:
            user = await self.tokens.authenticate(bearer_token(context))
            need = required_role(method)
            if user.role < need:
                raise PermissionDenied(f"{method.rsplit('/', 1)[-1]} needs role {need.name.lower()}")
        except SkyMeshError as exc:
            await abort_with(context, exc)
            raise AssertionError("unreachable: abort raises") from exc
        except Exception as exc:  # the database is down or failing: say so, never UNKNOWN with its internals
            log.exception("checking credentials for %s failed", method)
            await abort_with(context, Unavailable("cannot check credentials now; retry", reason="AUTH_UNAVAILABLE"))
            raise AssertionError("unreachable: abort raises") from exc
        return f"user:{user.user_id}"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not _guarded(method):
            return handler
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._wrap_unary(handler.unary_unary, method), **codec)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._wrap_unary(handler.stream_unary, method), **codec)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._wrap_stream(handler.unary_stream, method), **codec)
        return grpc.stream_stream_rpc_method_handler(self._wrap_stream(handler.stream_stream, method), **codec)

    def _wrap_unary(self, behavior: Any, method: str) -> Callable[..., Awaitable[Any]]:
        invalidates = method.rsplit("/", 1)[-1] in _CREDENTIAL_METHODS

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = _ACTOR.set(await self._authorize(context, method))
            if invalidates:
                self.tokens.clear()
            try:
                return await behavior(request, context)
            finally:
                if invalidates:
                    self.tokens.clear()
                _ACTOR.reset(token)

        return guarded

    def _wrap_stream(self, behavior: Any, method: str) -> Callable[..., AsyncIterator[Any]]:
        # grpc.aio streaming handlers are either async generators or coroutines that call context.write().
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            # No reset: a cancelled stream (a browser leaving EventService.Watch) is finalised in another context,
            # where resetting raises; each RPC runs in its own task with its own copy of the context, so the value
            # cannot leak to another call.
            _ACTOR.set(await self._authorize(context, method))
            result = behavior(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result

        return guarded


def write_owner_only(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (0600), atomically: no moment where it is wider or partial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


async def bootstrap_admin(repo: Repository, path: Path) -> bool:
    """On a database without users, create the user "admin" and write its token to `path` (0600).

    Returns True if it did. A database that has users is left alone (and so is the file), so restarts and further
    replicas change nothing; two replicas racing on a fresh database create the user once.
    """
    if await repo.count_users() > 0:
        return False
    # Fail on an unwritable location before touching the database, so no admin is created whose token nobody has.
    probe = path.with_name(f".{path.name}.probe")
    await asyncio.to_thread(write_owner_only, probe, "")
    await asyncio.to_thread(probe.unlink)
    try:
        await repo.create_user(ADMIN_USER, Role.ADMIN, actor="bootstrap")
    except AlreadyExists:
        return False
    token = await repo.issue_user_token(ADMIN_USER, actor="bootstrap")
    await asyncio.to_thread(write_owner_only, path, token + "\n")
    log.warning(
        "first start: created user %r (admin); its token is in %s (owner-only). Keep it secret; "
        "`skymesh keys token admin` issues another.",
        ADMIN_USER,
        path,
    )
    return True
