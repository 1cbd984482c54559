"""Where the W&B plugin finds its API key, entity, project and URLs.

The lookup follows the W&B SDK's conventions (``wandb/env.py``, ``wandb/util.py``):
explicit credentials first, then ``WANDB_*`` environment variables, then the
``~/.netrc`` entry that ``wandb login`` writes, then defaults.
"""

from __future__ import annotations

import netrc
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PROJECT",
    "SETTINGS_KEYS",
    "Settings",
    "api_to_app_url",
    "check_api_key",
    "resolve_settings",
]

#: The keys :func:`resolve_settings` reads from the tracker's configuration table.
SETTINGS_KEYS = frozenset({
    "artifact_attempts",
    "artifact_retry_wait",
    "base_url",
    "entity",
    "project",
    "timeout",
    "transport",
})

DEFAULT_BASE_URL = "https://api.wandb.ai"
DEFAULT_PROJECT = "uncategorized"
DEFAULT_TIMEOUT = 30.0

_KEY_BODY = re.compile(r"[A-Za-z0-9_]{40,}")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@attrs.define(frozen=True, kw_only=True)
class Settings:
    """The resolved connection settings of one session.

    ``api_key`` is excluded from ``repr`` and equality so it never shows in logs or
    tracebacks.
    """

    api_key: str = attrs.field(repr=False, eq=False)
    base_url: str
    app_url: str
    entity: str | None
    project: str
    timeout: float = DEFAULT_TIMEOUT
    artifact_attempts: int = 4
    artifact_retry_wait: float = 1.0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False, eq=False)

    def project_url(self, entity: str, project: str) -> str:
        """The project's page in the W&B UI, quoted as the SDK quotes it."""
        return f"{self.app_url}/{quote(entity)}/{quote(project)}"

    def run_url(self, entity: str, project: str, run_name: str) -> str:
        """The run's page in the W&B UI."""
        return f"{self.project_url(entity, project)}/runs/{quote(run_name, safe='=+&$@')}"


def check_api_key(key: object) -> str:
    """Return ``key`` if it has the shape of a W&B API key, else raise ``ValueError``.

    Accepted (``wandb/sdk/lib/wbauth/validation.py``): an optional ``<prefix>-`` then at
    least 40 characters of ``[A-Za-z0-9_]``, or a JWT (three dot-separated segments).
    The message never repeats the key.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("W&B API key is missing or not a string")
    if _JWT.fullmatch(key):
        return key
    body = key.split("-", 1)[1] if "-" in key else key
    if not _KEY_BODY.fullmatch(body):
        raise ValueError(
            "W&B API key is malformed: expected an optional 'prefix-' followed by at least "
            "40 characters of [A-Za-z0-9_] (get one at https://wandb.ai/authorize)"
        )
    return key


def api_to_app_url(api_url: str) -> str:
    """Derive the web UI URL from the API URL as ``wandb.util.app_url`` does.

    ``WANDB_APP_URL`` overrides; ``://api.wandb.`` drops ``api.``; another ``://api.``
    host becomes ``://app.``; anything else (a self-hosted server) is used as-is.
    """
    override = os.environ.get("WANDB_APP_URL")
    if override:
        return override.rstrip("/")
    if "://api.wandb." in api_url:
        return api_url.replace("://api.", "://", 1).rstrip("/")
    if "://api." in api_url:
        return api_url.replace("://api.", "://app.", 1).rstrip("/")
    return api_url.rstrip("/")


def _netrc_key(base_url: str) -> str | None:
    host = urlsplit(base_url).hostname
    if not host:
        return None
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if entry is None:
        return None
    return entry[2] or None


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def resolve_settings(credentials: Mapping[str, Any], settings: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from ``connect``'s credentials and the tracker's settings.

    Keys read: ``credentials["api_key"]``, ``credentials["entity"]``,
    ``credentials["base_url"]``; ``settings["base_url"]``, ``settings["project"]``,
    ``settings["entity"]``, ``settings["timeout"]``, ``settings["transport"]`` (an
    ``httpx.AsyncBaseTransport``: the testing hook), ``settings["artifact_attempts"]``,
    ``settings["artifact_retry_wait"]``. Environment: ``WANDB_API_KEY``,
    ``WANDB_ENTITY``, ``WANDB_BASE_URL``, ``WANDB_PROJECT``, ``WANDB_APP_URL``,
    ``WANDB_HTTP_TIMEOUT``, and ``~/.netrc`` (or ``$NETRC``) for the API host.

    :raises ValueError: no API key, or one that is malformed.
    """
    base_url = str(
        _first(
            credentials.get("base_url"),
            settings.get("base_url"),
            os.environ.get("WANDB_BASE_URL"),
            DEFAULT_BASE_URL,
        )
    ).rstrip("/")
    api_key = _first(credentials.get("api_key"), os.environ.get("WANDB_API_KEY"))
    if api_key is None:
        api_key = _netrc_key(base_url)
    if api_key is None:
        raise ValueError(
            "no W&B API key: set the WANDB_API_KEY environment variable, or run "
            "`wandb login` (it writes ~/.netrc); from Python, "
            "connect(credentials={'api_key': ...}) works too"
        )
    check_api_key(api_key)
    transport = settings.get("transport")
    if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
        raise TypeError("settings['transport'] must be an httpx.AsyncBaseTransport")
    timeout = _first(settings.get("timeout"), os.environ.get("WANDB_HTTP_TIMEOUT"))
    return Settings(
        api_key=api_key,
        base_url=base_url,
        app_url=api_to_app_url(base_url),
        entity=_first(
            credentials.get("entity"), settings.get("entity"), os.environ.get("WANDB_ENTITY")
        ),
        project=str(
            _first(settings.get("project"), os.environ.get("WANDB_PROJECT"), DEFAULT_PROJECT)
        ),
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        artifact_attempts=int(settings.get("artifact_attempts", 4)),
        artifact_retry_wait=float(settings.get("artifact_retry_wait", 1.0)),
        transport=transport,
    )
