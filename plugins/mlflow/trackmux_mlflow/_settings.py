"""Where the MLflow plugin finds its server, credentials and experiment.

The lookup follows MLflow's own conventions (``mlflow/environment_variables.py``): explicit
credentials first, then the tracker's settings table, then ``MLFLOW_*`` environment
variables. Only ``http://`` and ``https://`` tracking URIs are accepted: the plugin speaks
the tracking server's REST API and has no file or database store of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx

__all__ = ["DEFAULT_EXPERIMENT", "DEFAULT_TIMEOUT", "Settings", "resolve_settings"]

#: The keys :func:`resolve_settings` reads from the tracker's configuration table.
SETTINGS_KEYS = frozenset({
    "artifact_attempts",
    "artifact_retry_wait",
    "experiment",
    "timeout",
    "tracking_uri",
    "transport",
})

DEFAULT_EXPERIMENT = "Default"
DEFAULT_TIMEOUT = 30.0


@attrs.define(frozen=True, kw_only=True)
class Settings:
    """The resolved connection settings of one session.

    ``token`` and ``password`` are excluded from ``repr`` and equality so that they never
    show in logs or tracebacks.
    """

    tracking_uri: str
    token: str | None = attrs.field(default=None, repr=False, eq=False)
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False, eq=False)
    experiment: str = DEFAULT_EXPERIMENT
    timeout: float = DEFAULT_TIMEOUT
    verify: bool = True
    artifact_attempts: int = 4
    artifact_retry_wait: float = 1.0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret of the session, for scrubbing messages."""
        return tuple(s for s in (self.token, self.password) if s)

    def auth(self) -> httpx.Auth | None:
        """Bearer token if there is one, else HTTP Basic if a username is set."""
        if self.token:
            return _BearerAuth(self.token)
        if self.username is not None:
            return httpx.BasicAuth(self.username, self.password or "")
        return None


class _BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` (``MLFLOW_TRACKING_TOKEN``)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "<_BearerAuth (token hidden)>"


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def resolve_settings(credentials: Mapping[str, Any], settings: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from ``connect``'s credentials and the tracker's settings.

    Keys read: ``credentials`` ``tracking_uri``, ``token``, ``username``, ``password``;
    ``settings`` ``tracking_uri``, ``experiment``, ``timeout`` (seconds per request),
    ``artifact_attempts``, ``artifact_retry_wait`` and ``transport`` (an
    ``httpx.AsyncBaseTransport``: the testing hook). Environment: ``MLFLOW_TRACKING_URI``,
    ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``,
    ``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``,
    ``MLFLOW_TRACKING_INSECURE_TLS``.

    :raises ValueError: no tracking URI, or one that is not ``http(s)://``.
    """
    uri = _first(
        credentials.get("tracking_uri"),
        settings.get("tracking_uri"),
        os.environ.get("MLFLOW_TRACKING_URI"),
    )
    if uri is None:
        raise ValueError(
            "no MLflow tracking URI: set the MLFLOW_TRACKING_URI environment variable "
            "(http://host:5000), or tracking_uri in the [mlflow] table of trackmux.toml; "
            "from Python, connect(credentials={'tracking_uri': ...}) works too"
        )
    parts = urlsplit(str(uri))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the MLflow tracker needs an http(s):// tracking server URI, got scheme "
            f"{parts.scheme or 'none'!r} (file, database and databricks stores are not supported)"
        )
    if parts.username or parts.password:
        raise ValueError(
            "put MLflow credentials in MLFLOW_TRACKING_USERNAME/PASSWORD or credentials, "
            "not in the tracking URI"
        )
    transport = settings.get("transport")
    if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
        raise TypeError("settings['transport'] must be an httpx.AsyncBaseTransport")
    timeout = _first(settings.get("timeout"), os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT"))
    return Settings(
        tracking_uri=str(uri).rstrip("/"),
        token=_first(credentials.get("token"), os.environ.get("MLFLOW_TRACKING_TOKEN")),
        username=_first(credentials.get("username"), os.environ.get("MLFLOW_TRACKING_USERNAME")),
        password=_first(credentials.get("password"), os.environ.get("MLFLOW_TRACKING_PASSWORD")),
        experiment=str(
            _first(
                settings.get("experiment"),
                os.environ.get("MLFLOW_EXPERIMENT_NAME"),
                DEFAULT_EXPERIMENT,
            )
        ),
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        verify=not _truthy(os.environ.get("MLFLOW_TRACKING_INSECURE_TLS")),
        artifact_attempts=int(settings.get("artifact_attempts", 4)),
        artifact_retry_wait=float(settings.get("artifact_retry_wait", 1.0)),
        transport=transport,
    )
