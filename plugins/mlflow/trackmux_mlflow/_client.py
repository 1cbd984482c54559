"""An async client for the MLflow tracking server: REST calls and the artifact proxy.

REST calls go to ``{tracking_uri}/api/2.0/mlflow/<endpoint>`` and artifact bytes to
``{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/<path>`` (the server's artifact
proxy, ``mlflow server --serve-artifacts``, the default since MLflow 2.0). The client
makes one attempt per call and translates failures into trackmux's
:class:`~trackmux_spec.RetryableError` / :class:`~trackmux_spec.PermanentError`; the
engine owns retry. Secrets are scrubbed from every message it builds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from trackmux_spec import RetryableError

from ._failures import error_for_response, error_for_transport
from ._settings import Settings

__all__ = ["MLflowClient"]

_USER_AGENT = "trackmux-mlflow"
_REST = "/api/2.0/mlflow/"
_PROXY = "/api/2.0/mlflow-artifacts/artifacts/"


class MLflowClient:
    """One session's HTTP client for a tracking server.

    :param settings: the resolved settings (URI, auth, timeout, transport).
    """

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.tracking_uri
        self._secrets = settings.secrets
        self._http = httpx.AsyncClient(
            auth=settings.auth(),
            headers={"User-Agent": _USER_AGENT},
            timeout=settings.timeout,
            transport=settings.transport,
            verify=settings.verify,
        )

    def __repr__(self) -> str:
        return f"<MLflowClient {self.base_url}>"

    def _scrubbed(self, exc: Exception) -> Exception:
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if text != str(exc):
            exc.args = (text,)
        return exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _send(self, method: str, url: str, operation: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise self._scrubbed(error_for_transport(exc, operation)) from None
        if response.is_success:
            return response
        raise self._scrubbed(error_for_response(response, operation))

    async def call(
        self,
        method: str,
        endpoint: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One REST call, e.g. ``call("POST", "runs/create", body={...})``.

        ``body`` is encoded as strict JSON (no bare ``NaN``: callers encode special floats
        as MLflow's protobuf JSON strings first).

        :raises RetryableError: timeout, connection failure, 408, 429, 5xx, a non-JSON answer.
        :raises MLflowError: any other refusal (a :class:`~trackmux_spec.PermanentError`).
        """
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["content"] = json.dumps(body, allow_nan=False, separators=(",", ":"))
            kwargs["headers"] = {"Content-Type": "application/json"}
        if params is not None:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        response = await self._send(method, self.base_url + _REST + endpoint, endpoint, **kwargs)
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError:
            raise RetryableError(f"MLflow {endpoint} returned a body that is not JSON") from None
        return answer if isinstance(answer, dict) else {}

    def proxy_url(self, artifact_path: str) -> str:
        """The artifact proxy URL of ``artifact_path`` (``<exp>/<run>/artifacts/<file>``)."""
        return self.base_url + _PROXY + quote(artifact_path, safe="/")

    async def put_artifact(
        self, artifact_path: str, content: bytes | AsyncIterator[bytes], size: int
    ) -> None:
        """PUT one file's bytes through the artifact proxy."""
        await self._send(
            "PUT",
            self.proxy_url(artifact_path),
            f"artifact upload of {artifact_path}",
            content=content,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )

    async def get_artifact(self, artifact_path: str) -> bytes:
        """GET one (small) file's bytes through the artifact proxy."""
        response = await self._send(
            "GET", self.proxy_url(artifact_path), f"artifact download of {artifact_path}"
        )
        return response.content

    async def download_artifact(self, artifact_path: str, dest: Path) -> tuple[int, str]:
        """Stream one file into ``dest``; return its size and hex SHA-256."""
        operation = f"artifact download of {artifact_path}"
        sha256 = hashlib.sha256()
        size = 0
        try:
            async with self._http.stream("GET", self.proxy_url(artifact_path)) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._scrubbed(error_for_response(response, operation))
                with dest.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        sha256.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise self._scrubbed(error_for_transport(exc, operation)) from None
        return size, sha256.hexdigest()
