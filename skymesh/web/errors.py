"""Errors leave the gateway as one JSON shape, `{"code", "message", "field"}`, with the HTTP status of
`skymesh.core.errors.STATUS_TABLE` (the same table the gRPC side maps from), so a field the server named is the
field the client sees. Request bodies that are not JSON are 400; JSON of the wrong shape or types is 422 naming the
field (pydantic's location, dotted); bodies over the limit are 413."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from skymesh.core.errors import SkyMeshError, status_for

__all__ = ["error_body", "install_error_handlers", "rename_field"]

log = logging.getLogger(__name__)

_REASON_SUFFIX = re.compile(r"\s*\[[A-Z0-9_]+\]$")
_HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "FAILED_PRECONDITION",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field}


def _plain_message(exc: SkyMeshError) -> str:
    """The message without the "field: " prefix and " [REASON]" suffix the gRPC status text carries."""
    text = _REASON_SUFFIX.sub("", exc.message)
    if exc.field and text.startswith(f"{exc.field}: "):
        text = text[len(exc.field) + 2 :]
    return text


def rename_field(exc: SkyMeshError, prefixes: Sequence[tuple[str, str]]) -> SkyMeshError:
    """Map a server field name ("station.location.latitude_deg") to the JSON body's ("latitude_deg")."""
    if exc.field:
        for old, new in prefixes:
            if exc.field == old or exc.field.startswith(old + "."):
                rest = exc.field[len(old) :].lstrip(".")
                exc.field = ".".join(part for part in (new, rest) if part) or None
                break
    return exc


def skymesh_error_response(exc: SkyMeshError) -> JSONResponse:
    mapping = status_for(exc)
    if mapping.http_status >= 500 and mapping.grpc_code_name == "INTERNAL":
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s: %s", error_id, exc)
        return JSONResponse(error_body("INTERNAL", f"internal error (id {error_id})"), status_code=mapping.http_status)
    if exc.field and (exc.field == "station_id" or exc.field.startswith("station_id.")):
        exc.field = "site_id" + exc.field[len("station_id") :]  # the JSON API calls stations sites (DATAS)
    reason = exc.reason if exc.reason and exc.reason != mapping.grpc_code_name else mapping.grpc_code_name
    body = error_body(mapping.grpc_code_name, _plain_message(exc), exc.field)
    if reason != mapping.grpc_code_name:
        body["reason"] = reason
    return JSONResponse(body, status_code=mapping.http_status)


def _loc_field(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or None


def install_error_handlers(app: Any) -> None:
    @app.exception_handler(SkyMeshError)  # type: ignore[untyped-decorator]
    async def _skymesh(request: Request, exc: SkyMeshError) -> JSONResponse:
        return skymesh_error_response(exc)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            detail = first.get("ctx", {}).get("error", "invalid JSON")
            return JSONResponse(error_body("INVALID_ARGUMENT", f"body is not valid JSON: {detail}", "body"), 400)
        field = _loc_field(first.get("loc", ()))
        message = str(first.get("msg", "invalid value"))
        if field is None and first.get("type") == "missing":
            message = "a JSON body is required"
        return JSONResponse(error_body("INVALID_ARGUMENT", message, field or "body"), status_code=422)

    @app.exception_handler(StarletteHTTPException)  # type: ignore[untyped-decorator]
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "INVALID_ARGUMENT" if exc.status_code < 500 else "INTERNAL")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
        return JSONResponse(error_body("INTERNAL", f"internal error (id {error_id})"), status_code=500)
