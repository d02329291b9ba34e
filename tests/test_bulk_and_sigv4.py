"""SigV4 signing of the OpenSearch client, and the bulk loader against the real node.

SigV4 is checked on the wire: a loopback server records each request the client sends, the
Authorization header is parsed, and the signature is recomputed with botocore's own SigV4Auth
from the recorded method, path, signed headers and body.

The bulk loader runs against the real OpenSearch node through a loopback proxy that injects
back-pressure (429 for whole requests and for single items, dropped connections, 413) and
records every `_bulk` body. "Indexed exactly once" is read from `_version`: ids are
deterministic, so a document indexed twice would be at version 2.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from reko.index.bulk import BulkLoader, BulkLoadError, bulk_load
from reko.index.client import ensure_templates, get_client, get_hook
from reko.localdev.synthetic import detection_actions
from tests.support.loopback_opensearch import FaultyProxy, RecordingServer, parse_bulk
from tests.support.same_index import doc_versions

REPO = Path(__file__).resolve().parents[1]

ACCESS_KEY = "AKIDEXAMPLE0TEST"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//session-token+value="
REGION = "eu-west-1"
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+),"
    r" Signature=(?P<sig>[0-9a-f]{64})$"
)


# -- SigV4 ---------------------------------------------------------------------------------------


def _connections(monkeypatch, port: int, service: str, token: str | None) -> str:
    """An OpenSearch connection asking for SigV4 and an AWS connection with static keys (env JSON)."""
    suffix = uuid.uuid4().hex[:8]
    aws_id, os_id = f"aws_sig_{suffix}", f"os_sig_{suffix}"
    aws_extra = {"aws_session_token": token} if token else {}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{aws_id.upper()}",
        json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY, "extra": aws_extra}),
    )
    extra = {
        "scheme": "http",
        "auth": "sigv4",
        "aws_conn_id": aws_id,
        "region_name": REGION,
        "service": service,
    }
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{os_id.upper()}",
        json.dumps({"conn_type": "opensearch", "host": "127.0.0.1", "port": port, "extra": extra}),
    )
    return os_id


def _recompute_signature(req, service: str, secret: str, token: str | None) -> str:
    """The signature botocore computes for the recorded request, at its recorded X-Amz-Date."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = AUTH_RE.match(req.headers["authorization"])["signed"].split(";")
    aws_request = AWSRequest(
        method=req.method,
        url=f"http://{req.headers['host']}{req.path}",
        data=req.body,
        headers={name: req.headers[name] for name in signed},
    )
    aws_request.context["timestamp"] = req.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS_KEY, secret, token), service, REGION)
    return auth.signature(auth.string_to_sign(aws_request, auth.canonical_request(aws_request)), aws_request)


@pytest.mark.parametrize(
    ("service", "token", "http"),
    [("es", None, "requests"), ("aoss", SESSION_TOKEN, "requests"), ("es", SESSION_TOKEN, "urllib3")],
)
def test_sigv4_signs_every_request_with_service_region_and_token(monkeypatch, caplog, service, token, http):
    from opensearchpy import Urllib3HttpConnection

    from reko.aws.opensearch import AwsOpenSearchHook

    caplog.set_level(logging.DEBUG)
    with RecordingServer() as server:
        conn_id = _connections(monkeypatch, server.port, service, token)
        if http == "requests":
            hook = get_hook(conn_id)  # what the pipeline does: the connection's extras choose SigV4
            assert type(hook) is AwsOpenSearchHook
        else:
            hook = AwsOpenSearchHook(conn_id, open_search_conn_class=Urllib3HttpConnection)
        client = hook.client
        connection = client.transport.connection_pool.connection
        assert type(connection).__name__ == f"{http.capitalize()}HttpConnection"
        client.info()
        result = bulk_load(
            client, ({"_index": "signed", "_id": str(i), "_source": {"n": i}} for i in range(3)), max_docs=2
        )
        assert result.indexed == 3 and result.requests == 2
        requests = list(server.requests)

    assert [(r.method, r.path.split("?")[0]) for r in requests] == [
        ("GET", "/"),
        ("POST", "/_bulk"),
        ("POST", "/_bulk"),
    ]
    assert parse_bulk(requests[2].body)[0][1]["_id"] == "2"
    for req in requests:
        auth = AUTH_RE.match(req.headers["authorization"])
        assert auth, req.headers["authorization"]
        assert (auth["key"], auth["region"], auth["service"]) == (ACCESS_KEY, REGION, service)
        assert re.fullmatch(r"\d{8}T\d{6}Z", req.headers["x-amz-date"])
        assert auth["date"] == req.headers["x-amz-date"][:8]
        assert req.headers["x-amz-content-sha256"] == hashlib.sha256(req.body).hexdigest()
        signed = auth["signed"].split(";")
        assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
        if token:
            assert req.headers["x-amz-security-token"] == token
            assert "x-amz-security-token" in signed
        else:
            assert "x-amz-security-token" not in req.headers
        assert _recompute_signature(req, service, SECRET_KEY, token) == auth["sig"]
        # the check can fail: another secret gives another signature
        assert _recompute_signature(req, service, SECRET_KEY + "x", token) != auth["sig"]
    # the secret key is never logged; the token travels in a header that botocore's DEBUG log
    # prints, so it is registered with Airflow's masker, which task logs go through
    from airflow.sdk.log import redact

    assert SECRET_KEY not in caplog.text
    assert SESSION_TOKEN not in redact(caplog.text)
    if token:
        assert redact(f"x {token} y") == "x *** y"


def test_basic_connection_keeps_the_providers_hook(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OS_BASIC_TEST",
        json.dumps(
            {"conn_type": "opensearch", "host": "127.0.0.1", "port": 9, "login": "u", "password": "p"}
        ),
    )
    hook = get_hook("os_basic_test")
    assert type(hook).__name__ == "OpenSearchHook"
    assert get_client("os_basic_test").transport.connection_pool.connection.session.auth == ("u", "p")


def test_a_cold_process_talks_to_opensearch_without_importing_aiohttp(os_client):
    """reko's client leaves out opensearch-py's asyncio half (aiohttp: ~0.13 CPU-s of every cold
    task process); the sync client works against the real node, and aiohttp stays importable."""
    probe = """
import sys
from reko.index.client import get_client
info = get_client().info()
cold = ("aiohttp" in sys.modules, "opensearchpy._async.client" in sys.modules)
import aiohttp
from aiohttp import ClientSession
print(info["version"]["distribution"], cold, aiohttp.__name__)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "opensearch (False, False) aiohttp"


@pytest.mark.parametrize(
    ("extra", "login", "message"),
    [
        ({"auth": "kerberos"}, None, "auth='kerberos' is not one of"),
        ({"auth": "sigv4", "service": "s3"}, None, "service 's3' is not one of"),
        ({"auth": "sigv4", "region_name": REGION}, "admin", "both SigV4 and a login/password"),
    ],
)
def test_bad_sigv4_connection_is_named(monkeypatch, extra, login, message):
    conn = {"conn_type": "opensearch", "host": "127.0.0.1", "port": 9, "extra": extra}
    if login:
        conn.update(login=login, password="secret")
    monkeypatch.setenv("AIRFLOW_CONN_OS_BAD_TEST", json.dumps(conn))
    with pytest.raises(ValueError, match=re.escape(message)):
        get_client("os_bad_test")


def test_sigv4_without_region_says_where_to_set_it(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_NOREGION_TEST",
        json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY}),
    )
    extra = {"auth": "sigv4", "aws_conn_id": "aws_noregion_test"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_OS_NOREGION_TEST",
        json.dumps({"conn_type": "opensearch", "host": "127.0.0.1", "port": 9, "extra": extra}),
    )
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ValueError, match="no AWS region for connection 'os_noregion_test'"):
        get_client("os_noregion_test")


# -- bulk loading against the real node ---------------------------------------------------------


@pytest.fixture
def detections_index(os_client, index_names) -> str:
    ensure_templates(os_client, index_names)
    return index_names.detections


@pytest.fixture
def proxy(opensearch_url) -> Iterator[FaultyProxy]:
    with FaultyProxy(opensearch_url) as p:
        yield p


@pytest.fixture
def proxied(proxy) -> OpenSearch:
    """A client through the proxy; no transport retries, so the loader's own handling is seen."""
    return OpenSearch(hosts=[proxy.url], timeout=60, max_retries=0)


class Sleeps(list):
    """A sleep that records instead of waiting: back-off is asserted, not timed."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_requests_stay_under_max_bytes_and_max_docs(proxy, proxied, os_client, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=600))
    max_bytes = 64 * 1024
    result = bulk_load(proxied, actions, max_bytes=max_bytes, max_docs=10_000)

    sizes = [len(r.body) for r in proxy.bulk_requests]
    assert result.indexed == len(actions) == 3000
    assert result.requests == len(sizes) and result.retried == 0 and result.shrinks == 0
    assert max(sizes) <= max_bytes
    assert all(size > max_bytes - 1000 for size in sizes[:-1])  # filled to within one document (< 1 kB)
    assert [i for r in proxy.bulk_requests for i in r.bulk_ids] == [a["_id"] for a in actions]

    proxy.bulk_requests.clear()
    again = bulk_load(proxied, actions, max_bytes=10 * 1024 * 1024, max_docs=700)
    assert [len(r.bulk_ids) for r in proxy.bulk_requests] == [700, 700, 700, 700, 200]
    assert again.indexed == 3000
    # overwritten, not duplicated
    assert set(doc_versions(os_client, detections_index, video).values()) == {2}


def test_whole_request_429_shrinks_backs_off_and_grows_back(proxy, proxied, os_client, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=400))
    proxy.faults.reject_requests = 3
    sleeps = Sleeps()
    max_bytes = 128 * 1024
    loader = BulkLoader(
        proxied, max_bytes=max_bytes, max_docs=10_000, initial_backoff_s=1.0, sleep=sleeps, jitter=lambda: 0.5
    )
    result = loader.load(actions)

    sizes = [len(r.body) for r in proxy.bulk_requests]
    assert sleeps == [0.75, 1.5, 3.0]  # 2^n back-off, half of it jittered
    assert result.shrinks == 3 and result.indexed == 2000
    assert sizes[1] <= max_bytes // 2 and sizes[2] <= max_bytes // 4 and sizes[3] <= max_bytes // 8
    assert max(sizes[4:]) > max_bytes // 8  # grew back once the node kept up
    assert max(sizes) <= max_bytes
    versions = doc_versions(os_client, detections_index, video)
    assert len(versions) == 2000 and set(versions.values()) == {1}  # every document indexed once


def test_item_level_429_retries_only_those_items(proxy, proxied, os_client, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=200))
    rejected = {actions[i]["_id"] for i in (3, 250, 251, 640, 999)}
    proxy.faults.reject_items = set(rejected)
    sleeps = Sleeps()
    result = bulk_load(
        proxied, actions, max_bytes=10 * 1024 * 1024, max_docs=500, sleep=sleeps, jitter=lambda: 0.0
    )

    ids_sent = [r.bulk_ids for r in proxy.bulk_requests]
    assert result.indexed == 1000 and result.retried == 5 and result.shrinks == 0
    assert len(sleeps) == 3  # one back-off after each request that had rejections (1-500, 501-997, 998-1000)
    # request 1 had 3 rejected ids; they lead request 2, the rest follow in input order
    assert ids_sent[1][:3] == [actions[i]["_id"] for i in (3, 250, 251)]
    assert sorted(i for batch in ids_sent for i in batch) == sorted(
        [a["_id"] for a in actions] + list(rejected)
    )
    versions = doc_versions(os_client, detections_index, video)
    assert len(versions) == 1000 and set(versions.values()) == {1}


def test_mapping_errors_fail_loudly_after_the_rest_is_indexed(proxied, os_client, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=100))
    wrong_type = {
        "_index": detections_index,
        "_id": f"{video}:bad-type",
        "_source": {**actions[0]["_source"], "frame_index": "three"},
    }
    unknown_field = {
        "_index": detections_index,
        "_id": f"{video}:bad-field",
        "_source": {**actions[1]["_source"], "colour": "red"},
    }
    mixed = actions[:200] + [wrong_type] + actions[200:400] + [unknown_field] + actions[400:]

    with pytest.raises(BulkLoadError) as caught:
        bulk_load(proxied, mixed, max_docs=150)
    message = str(caught.value)
    assert f"{detections_index}/{video}:bad-type: 400 mapper_parsing_exception" in message
    assert "failed to parse field [frame_index]" in message
    assert f"{detections_index}/{video}:bad-field: 400 strict_dynamic_mapping_exception" in message
    assert "[colour]" in message
    assert {f.doc_id for f in caught.value.failures} == {f"{video}:bad-type", f"{video}:bad-field"}
    assert caught.value.result.indexed == 500 and not caught.value.pending
    assert len(doc_versions(os_client, detections_index, video)) == 500


def test_too_many_mapping_errors_stop_reading_input(proxied, detections_index):
    bad = (
        {"_index": detections_index, "_id": f"bad-{i}", "_source": {"frame_index": "x"}} for i in range(1000)
    )
    with pytest.raises(BulkLoadError, match="the rest of the input was not read") as caught:
        bulk_load(proxied, bad, max_docs=50, max_errors=100)
    assert len(caught.value.failures) == 100 and caught.value.result.requests == 2


def test_delete_of_missing_documents_is_not_a_failure(proxied, os_client, detections_index):
    from reko.pipeline import _bulk

    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=2))
    bulk_load(proxied, actions)
    deletes = [{"_op_type": "delete", "_index": detections_index, "_id": a["_id"]} for a in actions]
    missing = [
        {"_op_type": "delete", "_index": detections_index, "_id": f"{video}:gone-{i}"} for i in range(5)
    ]
    result = bulk_load(proxied, deletes[:4] + missing)
    assert (result.deleted, result.not_found, result.failed) == (4, 5, [])
    assert _bulk(proxied, deletes + missing) == 6  # the pipeline's count: documents actually deleted
    assert doc_versions(os_client, detections_index, video) == {}


def test_dropped_connections_and_413_shrink_and_succeed(proxy, proxied, os_client, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=200))
    proxy.faults.drop_requests = 2
    proxy.faults.max_body = 40_000
    sleeps = Sleeps()
    result = bulk_load(
        proxied, actions, max_bytes=200_000, sleep=sleeps, jitter=lambda: 1.0, initial_backoff_s=0.2
    )
    assert result.indexed == 1000
    assert len(sleeps) == 2  # only the dropped connections waited; 413 shrinks at once
    sizes = [len(r.body) for r in proxy.bulk_requests]
    # 200 kB dropped, 100 kB dropped, 50 kB refused (413), then capped at half the refused size
    assert sizes[0] > 100_000 and 50_000 < sizes[1] <= 100_000 and 40_000 < sizes[2] <= 50_000
    assert result.shrinks == 3 and max(sizes[3:]) <= sizes[2] // 2 and result.requests == len(sizes)
    assert set(doc_versions(os_client, detections_index, video).values()) == {1}


def test_retry_budget_bounds_the_load_and_says_what_was_left(proxy, proxied, detections_index):
    video = f"v-{uuid.uuid4().hex[:8]}"
    actions = list(detection_actions(detections_index, video, frames=100))
    proxy.faults.reject_requests = 10_000
    sleeps = Sleeps()
    loader = BulkLoader(
        proxied, max_docs=100, max_retry_s=20, initial_backoff_s=1, max_backoff_s=8, sleep=sleeps
    )
    with pytest.raises(BulkLoadError, match=r"gave up after .* of retries \(max_retry_s=20\)") as caught:
        loader.load(actions)
    err = caught.value
    assert sum(sleeps) <= 20 and err.result.requests == len(sleeps) + 1 <= 10
    assert err.result.indexed == 0 and err.input_left
    assert [doc_id for _, doc_id in err.pending] == [a["_id"] for a in actions[: len(err.pending)]]
    assert f"not written ({len(err.pending)})" in str(err) and "the rest of the input was not read" in str(
        err
    )


def test_other_request_errors_fail_at_once(proxy, proxied, detections_index):
    proxy.faults.deny = True
    sleeps = Sleeps()
    actions = list(detection_actions(detections_index, "denied", frames=10))
    with pytest.raises(BulkLoadError, match="_bulk request failed with 403 security_exception") as caught:
        bulk_load(proxied, actions, sleep=sleeps)
    assert sleeps == [] and len(proxy.bulk_requests) == 1
    assert len(caught.value.pending) == 50 and "not written (50)" in str(caught.value)


def test_bulk_settings_are_checked(monkeypatch):
    from reko.config import bulk_max_bytes

    monkeypatch.setenv("REKO_BULK_MAX_BYTES", "5MB")
    with pytest.raises(ValueError, match="REKO_BULK_MAX_BYTES='5MB' is not a number"):
        bulk_max_bytes()
    monkeypatch.setenv("REKO_BULK_MAX_BYTES", "0")
    with pytest.raises(ValueError, match="must be greater than 0"):
        bulk_max_bytes()
    monkeypatch.setenv("REKO_BULK_MAX_BYTES", "1048576")
    assert BulkLoader(client=None).max_bytes == 1048576  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_docs must be at least 1"):
        BulkLoader(client=None, max_docs=0)  # type: ignore[arg-type]
