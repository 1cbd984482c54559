"""An async client for W&B's three kinds of traffic: GraphQL, file_stream and storage.

GraphQL (``POST {base}/graphql``) and file_stream
(``POST {base}/files/{entity}/{project}/{run}/file_stream``) carry the API key as HTTP
Basic auth (``api:<key>``), and only on URLs under the base URL. Pre-signed storage
URLs go through a second client that has no credentials at all.

The client makes one attempt per call and translates failures into trackmux's
:class:`~trackmux_spec.RetryableError` / :class:`~trackmux_spec.PermanentError`; the
engine owns retry. The API key is scrubbed from every message it builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from trackmux_spec import PermanentError, RetryableError

from ._failures import error_for_response, error_for_transport

__all__ = ["WandBClient"]

logger = logging.getLogger("trackmux.wandb")

_USER_AGENT = "trackmux-wandb"


class _BaseUrlBasicAuth(httpx.Auth):
    """HTTP Basic ``api:<key>``, attached only to requests under the base URL."""

    def __init__(self, api_key: str, base_url: str) -> None:
        token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")
        self._header = f"Basic {token}"
        self._base = httpx.URL(base_url)

    def _covers(self, url: httpx.URL) -> bool:
        base_path = self._base.path.rstrip("/")
        return (
            url.scheme == self._base.scheme
            and url.host == self._base.host
            and url.port == self._base.port
            and (url.path == base_path or url.path.startswith(base_path + "/"))
        )

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if self._covers(request.url):
            request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self._base} (key hidden)>"


class WandBClient:
    """One session's HTTP clients and its file_stream rate-limit state.

    :param base_url: the API URL, e.g. ``https://api.wandb.ai``.
    :param api_key: the W&B API key (never logged, never put in a message).
    :param timeout: per-request timeout (connect, read, write, pool), in seconds.
    :param transport: an httpx transport for both clients (tests pass a MockTransport).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = api_key
        headers = {"User-Agent": _USER_AGENT}
        self._api = httpx.AsyncClient(
            auth=_BaseUrlBasicAuth(api_key, self.base_url),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self._storage = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self._rate_limited_until = 0.0

    def __repr__(self) -> str:
        return f"<WandBClient {self.base_url}>"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _scrubbed(self, exc: Exception) -> Exception:
        if self._secret and self._secret in str(exc):
            exc.args = (self._scrub(str(exc)),)
        return exc

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        await self._api.aclose()
        await self._storage.aclose()

    async def _send(
        self, client: httpx.AsyncClient, method: str, url: str, operation: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise self._scrubbed(error_for_transport(exc, operation)) from None
        if response.is_success:
            return response
        raise self._scrubbed(error_for_response(response, operation))

    async def graphql(
        self, operation: str, query: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one GraphQL operation and return its ``data``.

        ``None`` values are left out of ``variables`` (the SDK omits empty ones).

        :raises RetryableError: timeout, connection failure, 408, 429, 5xx.
        :raises PermanentError: a refused request, or a 200 answer with ``errors`` only.
        """
        body = {
            "query": query,
            "variables": {k: v for k, v in (variables or {}).items() if v is not None},
            "operationName": operation,
        }
        response = await self._send(
            self._api, "POST", f"{self.base_url}/graphql", operation, json=body
        )
        try:
            payload = response.json()
        except ValueError:
            raise RetryableError(f"W&B {operation} returned a body that is not JSON") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors and not data:
            first = errors[0].get("message", "") if isinstance(errors[0], dict) else errors[0]
            raise PermanentError(self._scrub(f"W&B {operation} failed: {first}"))
        if not isinstance(data, dict):
            raise PermanentError(f"W&B {operation} returned no data")
        return data

    def file_stream_url(self, entity: str, project: str, run_name: str) -> str:
        """The run's file_stream endpoint."""
        parts = (quote(entity, safe=""), quote(project, safe=""), quote(run_name, safe=""))
        return f"{self.base_url}/files/{parts[0]}/{parts[1]}/{parts[2]}/file_stream"

    async def file_stream(
        self, entity: str, project: str, run_name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST one file_stream request and return the server's JSON answer.

        Rate limits: the server's ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers
        are read on every answer. When ``Remaining`` reaches 0, the next request is not
        sent before ``Reset`` seconds have passed: it raises
        :class:`RetryableError` with ``retry_after`` set to the time left, so the engine
        waits instead of the plugin.
        """
        wait = self._rate_limited_until - time.monotonic()
        if wait > 0:
            raise RetryableError(
                "W&B file_stream rate limit reached (RateLimit-Remaining: 0)", retry_after=wait
            )
        content = json.dumps(body, allow_nan=True, separators=(",", ":")).encode()
        response = await self._send(
            self._api,
            "POST",
            self.file_stream_url(entity, project, run_name),
            "file_stream",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        self._note_rate_limit(response.headers)
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def _note_rate_limit(self, headers: httpx.Headers) -> None:
        try:
            remaining = float(headers["RateLimit-Remaining"])
            reset = float(headers.get("RateLimit-Reset", "1"))
        except (KeyError, ValueError):
            return
        if remaining <= 0:
            self._rate_limited_until = time.monotonic() + max(0.0, reset)
            logger.info("W&B file_stream rate limit reached; pausing %.1f s", reset)

    async def put_storage(
        self,
        url: str,
        content: bytes | AsyncIterator[bytes],
        headers: Mapping[str, str],
        operation: str,
    ) -> None:
        """PUT bytes to a pre-signed storage URL with exactly ``headers`` and no auth."""
        await self._send(self._storage, "PUT", url, operation, content=content, headers=headers)

    async def download_storage(self, url: str, dest: Path, operation: str) -> str:
        """Stream a storage URL (no auth) into ``dest``; return the body's base64 MD5."""
        md5 = hashlib.md5()
        try:
            async with self._storage.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._scrubbed(error_for_response(response, operation))
                with dest.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        md5.update(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise self._scrubbed(error_for_transport(exc, operation)) from None
        return base64.b64encode(md5.digest()).decode("ascii")

    async def get_storage(self, url: str, operation: str) -> bytes:
        """GET a storage URL (no auth) and return the body."""
        response = await self._send(self._storage, "GET", url, operation)
        return response.content
