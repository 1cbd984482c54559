"""Pure wire-format helpers: error classification, history lines, manifests, safe paths."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math

import httpx
import pytest
from trackmux_spec import MetricRecord, PermanentError, RetryableError
from trackmux_wandb._failures import PayloadTooLargeError, error_for_response, parse_retry_after
from trackmux_wandb._history import decode_line, encode_line, history_line, split_by_size
from trackmux_wandb._manifest import artifact_digest, b64_md5, safe_destination, sanitize_name


def _response(status, headers=None, body=b"{}"):
    return httpx.Response(
        status,
        headers=headers,
        content=body,
        request=httpx.Request("POST", "https://api.wandb.ai/graphql"),
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 418])
def test_transient_statuses_are_retryable(status):
    assert isinstance(error_for_response(_response(status), "op"), RetryableError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 501])
def test_refusals_are_permanent_and_name_status_and_operation(status):
    error = error_for_response(_response(status), "UpsertBucket")
    assert isinstance(error, PermanentError)
    assert str(status) in str(error) and "UpsertBucket" in str(error)


def test_413_is_its_own_permanent_class():
    assert isinstance(error_for_response(_response(413), "file_stream"), PayloadTooLargeError)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    date = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30)
    assert parse_retry_after("garbage") is None
    error = error_for_response(_response(429, {"Retry-After": "3"}), "file_stream")
    assert error.retry_after == 3.0


def test_graphql_error_message_is_included():
    body = json.dumps({"errors": [{"message": "project not found"}]}).encode()
    assert "project not found" in str(error_for_response(_response(404, body=body), "Runs"))


def test_history_line_has_the_sdk_keys_and_nan_tokens():
    record = MetricRecord(3, 30, 1010.5, {"loss": math.nan, "up": math.inf, "down": -math.inf})
    line = encode_line(history_line(record, run_start=1000.0))
    assert "NaN" in line and "Infinity" in line and "-Infinity" in line
    row = decode_line(line)
    assert row["_step"] == 30 and row["_runtime"] == 10.5 and row["_timestamp"] == 1010.5
    assert math.isnan(row["loss"]) and row["up"] == math.inf and row["down"] == -math.inf


def test_split_by_size_keeps_offsets_consecutive_and_under_the_limit():
    lines = [(i, "x" * 100) for i in range(10, 30)]
    chunks = list(split_by_size(lines, limit=(64 << 10) + 600))
    assert [line for chunk in chunks for line in chunk] == lines
    assert all(len(chunk) <= 5 for chunk in chunks)


def test_digests_match_the_sdk():
    assert b64_md5(b"") == "1B2M2Y8AsgTpgAmY7PhCfg=="
    import hashlib

    expected = hashlib.md5(b"wandb-artifact-manifest-v1\na.txt:AAA=\nb/c.txt:BBB=\n").hexdigest()
    assert artifact_digest([("b/c.txt", "BBB="), ("a.txt", "AAA=")]) == expected


def test_collection_names_are_sanitised():
    assert sanitize_name("my model/v1 (best)") == "my-model-v1-best"
    assert sanitize_name("///") == "artifact"


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "a/../../evil",
        "/etc/passwd",
        "C:\\evil",
        "\\\\server\\share",
        "",
        "..",
    ],
)
def test_escaping_paths_are_refused(tmp_path, name):
    with pytest.raises(ValueError):
        safe_destination(tmp_path, name)


def test_nested_paths_stay_inside(tmp_path):
    assert safe_destination(tmp_path, "a/b/c.txt") == tmp_path.resolve() / "a" / "b" / "c.txt"
