"""reko.localdev.airflow_services.AirflowClient against a real HTTP server on 127.0.0.1 that
answers 500 first: a call safe to repeat is tried again, a POST only when the caller says it is."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reko.localdev.airflow_services import AirflowClient


class _Flaky(BaseHTTPRequestHandler):
    failures_left: dict[str, int] = {}
    seen: list[str] = []
    conflict_after_first_post = False

    def _answer(self) -> None:
        self.seen.append(self.command)
        left = self.failures_left.get(self.command, 0)
        if left:
            self.failures_left[self.command] = left - 1
            self.send_response(500)
            self.end_headers()
            return
        if self.command == "POST" and self.conflict_after_first_post:
            self.send_response(409)  # as if the first attempt, answered 500, had made the run
            self.end_headers()
            return
        if self.command == "DELETE" and self.seen.count("DELETE") > 1:
            self.send_response(404)  # as if the first, unanswered attempt had deleted it
            self.end_headers()
            return
        body = json.dumps({"method": self.command}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Flaky.seen = []
    yield server, AirflowClient(url=f"http://127.0.0.1:{server.server_port}", token="t")
    server.shutdown()


def test_repeatable_call_is_retried_on_5xx(flaky, monkeypatch):
    monkeypatch.setattr("reko.localdev.airflow_services.time.sleep", lambda s: None)
    _, client = flaky
    _Flaky.failures_left = {"PATCH": 2}
    assert client.call("PATCH", "/dags/d", {"is_paused": True}) == {"method": "PATCH"}
    assert _Flaky.seen == ["PATCH"] * 3


def test_delete_whose_answer_was_lost_is_done(flaky, monkeypatch):
    monkeypatch.setattr("reko.localdev.airflow_services.time.sleep", lambda s: None)
    _, client = flaky
    _Flaky.failures_left = {"DELETE": 1}
    assert client.call("DELETE", "/variables/k") == {}
    assert _Flaky.seen == ["DELETE", "DELETE"]


def test_a_post_is_never_repeated_unless_safe_and_persistent_5xx_fails(flaky, monkeypatch):
    monkeypatch.setattr("reko.localdev.airflow_services.time.sleep", lambda s: None)
    _, client = flaky
    _Flaky.failures_left = {"POST": 1, "GET": 9}
    with pytest.raises(urllib.error.HTTPError, match="500"):
        client.call("POST", "/dags/d/dagRuns", {"conf": {}})
    with pytest.raises(urllib.error.HTTPError, match="500"):
        client.call("GET", "/dags/d")
    assert _Flaky.seen == ["POST"] + ["GET"] * 4


def test_a_trigger_names_its_run_so_a_repeat_after_a_lost_answer_is_done(flaky, monkeypatch):
    """The first POST made the run but its answer was a 500; the repeat is refused with 409."""
    monkeypatch.setattr("reko.localdev.airflow_services.time.sleep", lambda s: None)
    _, client = flaky
    _Flaky.failures_left = {"POST": 1}
    _Flaky.conflict_after_first_post = True
    try:
        run_id = client.trigger("d", {"video_uri": "file:///v.mp4"})
    finally:
        _Flaky.conflict_after_first_post = False
    assert run_id.startswith("manual__") and _Flaky.seen == ["POST", "POST"]
