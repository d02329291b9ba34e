# ruff: noqa: F811  (pytest fixtures imported from tests.support.web_data are parameters here)
"""The search page's HTTP API, served by Airflow's own api-server app (in process, real JWTs).

The app under test is `airflow.api_fastapi.app.create_app()`: the same FastAPI app the
api-server runs, with reko's plugin mounted under /reko by Airflow's plugin manager and Airflow's
simple auth manager issuing and checking the tokens. The index is the real OpenSearch node with
the sample video analysed by the real `video_analysis` DAG.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.web_data import XSS, XSS_VIDEO, analysed_sample, own_indices, web_data  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def airflow_app(airflow_db, opensearch_url):
    """Airflow's app with an auth manager that can grant single DAGs (simple for everyone else)."""
    from airflow.api_fastapi.app import create_app, purge_cached_app

    from tests.support import per_dag_auth

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", per_dag_auth.PATH)
        purge_cached_app()
        app = create_app()
        yield app
        purge_cached_app()


@pytest.fixture
def airflow_in_process(airflow_app, monkeypatch):
    """Calls the plugin forwards to Airflow's REST API reach this same app, in process."""
    import httpx

    from reko.web import app as web_app

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=airflow_app), base_url="http://testserver/api/v2", timeout=30
        )

    monkeypatch.setattr(web_app, "_airflow_client", client)


def as_user(airflow_app, username: str, role: str | None = "viewer"):
    """A client with a real JWT of `username` (per-DAG grants in tests.support.per_dag_auth)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    return TestClient(airflow_app, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)


@pytest.fixture(scope="module")
def token(airflow_app) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture(scope="module")
def anon(airflow_app):
    from fastapi.testclient import TestClient

    return TestClient(airflow_app, follow_redirects=False)


@pytest.fixture(scope="module")
def api(airflow_app, token):
    from fastapi.testclient import TestClient

    return TestClient(airflow_app, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)


def search(api, **params) -> dict:
    resp = api.get("/reko/api/search", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def all_pages(api, **params) -> tuple[list[dict], int, int]:
    """Every hit over every page: (frames as (video, frame, text) rows, total, pages)."""
    rows, after, pages, total = [], None, 0, None
    while True:
        page = search(api, **params, **({"after": after} if after else {}))
        pages += 1
        total = page["total"] if total is None else total
        for video in page["videos"]:
            for frame in video["frames"]:
                rows += [(video["video_id"], frame["frame_index"], d["text"]) for d in frame["detections"]]
        after = page["next"]
        if not after:
            return rows, total, pages


# --- auth -----------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/reko/"),
    ("GET", "/reko/static/app.js"),
    ("GET", "/reko/api/videos"),
    ("GET", "/reko/api/search?text=1042"),
    ("GET", "/reko/api/clips?subject=1042"),
    ("POST", "/reko/api/clips"),
    ("GET", "/reko/api/clips/runs/manual__x"),
    ("GET", "/reko/media/a/b.jpg"),
    ("POST", "/reko/api/faces/search"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_caller_without_a_token(anon, method, path):
    resp = anon.request(method, path, json={"subject": "1042"} if method == "POST" else None)
    assert resp.status_code == 401, (path, resp.status_code, resp.text)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_forged_token_is_refused(airflow_app, method, path):
    from fastapi.testclient import TestClient

    forged = TestClient(airflow_app, headers={"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.e30.AAAA"})
    resp = forged.request(method, path, json={"subject": "1042"} if method == "POST" else None)
    assert resp.status_code in (401, 403)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_user_who_may_not_read_dags_is_forbidden(airflow_app, method, path):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    client = TestClient(airflow_app, headers={"Authorization": f"Bearer {token}"})
    resp = client.request(method, path, json={"subject": "1042"} if method == "POST" else None)
    assert resp.status_code == 403, (path, resp.status_code)


def test_a_viewer_may_search(airflow_app, web_data):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    client = TestClient(airflow_app, headers={"Authorization": f"Bearer {token}"})
    assert client.get("/reko/api/search", params={"text": "1042"}).json()["total"] == 5


def test_a_browser_without_a_session_is_sent_to_the_login_page(anon):
    resp = anon.get("/reko/?view=search&text=1042", headers={"Accept": "text/html"})
    assert resp.status_code == 303
    assert "login" in resp.headers["location"] and quote("/reko/", safe="") in resp.headers["location"]


def test_the_ui_cookie_is_accepted(airflow_app, token, web_data):
    from fastapi.testclient import TestClient

    browser = TestClient(airflow_app, cookies={"_token": token})
    resp = browser.get("/reko/", headers={"Accept": "text/html"})
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert browser.get("/reko/api/videos").status_code == 200


# --- per-DAG permissions: what is served comes from video_analysis / video_clips, so those are checked


def frame_and_clip_urls(api) -> tuple[str, str]:
    frame = search(api, text="1042")["videos"][0]["frames"][0]["frame_url"]
    (clip,) = api.get("/reko/api/clips", params={"subject": "web test"}).json()["clips"]
    return frame, clip["clip_url"]


def test_a_dag_id_in_the_query_string_grants_nothing(airflow_app, api, web_data, airflow_in_process):
    """A reader of hello_dag only: ?dag_id=hello_dag used to pass Airflow's requires_access_dag."""
    frame, clip = frame_and_clip_urls(api)
    hello = as_user(airflow_app, "hello_reader")
    for suffix in ("", "?dag_id=hello_dag", "?dag_id=video_analysis"):
        sep = "&" if suffix else ""
        for path in (
            f"/reko/api/search?text=1042{sep}{suffix[1:]}",
            f"/reko/api/videos{suffix}",
            f"{frame}{suffix}",
            f"{clip}{suffix}",
            f"/reko/api/clips?subject=web+test{sep}{suffix[1:]}",
            f"/reko/api/clips/runs/manual__web-test{suffix}",
            f"/reko/{suffix}",
        ):
            resp = hello.get(path)
            assert resp.status_code == 403, (path, resp.status_code, resp.text[:200])
            assert b"1042" not in resp.content and resp.content[:2] != b"\xff\xd8"
        resp = hello.post(f"/reko/api/clips{suffix}", json={"subject": "1042"})
        assert resp.status_code == 403, (suffix, resp.text)


def test_a_video_analysis_reader_may_search_but_not_request_clips(
    airflow_app, api, web_data, airflow_in_process
):
    frame, clip = frame_and_clip_urls(api)
    reader = as_user(airflow_app, "analysis_reader")
    assert reader.get("/reko/api/search", params={"text": "1042"}).json()["total"] == 5
    assert any(v["video_id"] == web_data["video_id"] for v in reader.get("/reko/api/videos").json()["videos"])
    got = reader.get(frame)
    assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
    assert reader.get("/reko/").status_code == 200
    # clips are video_clips' data: listing, playing, following and requesting them need that DAG
    for path in (clip, "/reko/api/clips?subject=web+test", "/reko/api/clips/runs/manual__web-test"):
        assert reader.get(path).status_code == 403, path
        assert reader.get(path + ("&" if "?" in path else "?") + "dag_id=video_analysis").status_code == 403
    for suffix in ("", "?dag_id=video_analysis", "?dag_id=video_clips"):
        resp = reader.post(f"/reko/api/clips{suffix}", json={"subject": "1042"})
        assert resp.status_code == 403 and "video_clips" in resp.json()["detail"], resp.text
    clip_reader = as_user(airflow_app, "clip_reader")
    assert clip_reader.get("/reko/api/clips", params={"subject": "web test"}).json()["clips"]
    assert clip_reader.get(clip).status_code == 200
    assert clip_reader.post("/reko/api/clips", json={"subject": "1042"}).status_code == 403


def test_a_user_who_may_trigger_video_clips_may_request_a_clip(
    airflow_app, api, web_data, airflow_in_process
):
    requester = as_user(airflow_app, "clip_requester")
    resp = requester.post("/reko/api/clips", json={"subject": "1042", "video_ids": [web_data["video_id"]]})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    try:
        assert run["dag_id"] == "video_clips" and run["conf"]["subject"] == "1042"
        assert run["state"] == "queued"
        followed = requester.get(f"/reko/api/clips/runs/{run['dag_run_id']}")
        assert followed.status_code == 200 and followed.json()["dag_run_id"] == run["dag_run_id"]
        assert (
            as_user(airflow_app, "analysis_reader")
            .get(f"/reko/api/clips/runs/{run['dag_run_id']}")
            .status_code
            == 403
        )
    finally:
        api.delete(f"/api/v2/dags/video_clips/dagRuns/{run['dag_run_id']}")


# --- clip requests that do not start --------------------------------------------------------------


@pytest.fixture
def clips_dag_paused(api):
    """Set video_clips' paused flag (as a user would in Airflow) and restore it afterwards."""
    before = api.get("/api/v2/dags/video_clips").json()["is_paused"]

    def set_paused(paused: bool) -> None:
        resp = api.patch("/api/v2/dags/video_clips", json={"is_paused": paused})
        assert resp.status_code == 200 and resp.json()["is_paused"] is paused, resp.text

    yield set_paused
    set_paused(before)


def set_run(run_id: str, **values) -> None:
    """Put a video_clips run into a state no scheduler runs here to produce (or age it)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id="video_clips", run_id=run_id).one()
        for key, value in values.items():
            setattr(run, key, value)


def test_a_clip_request_of_a_paused_video_clips_says_so(
    airflow_app, api, web_data, airflow_in_process, clips_dag_paused
):
    clips_dag_paused(True)
    requester = as_user(airflow_app, "clip_requester")
    assert requester.get("/reko/api/clips/dag").json() == {
        "dag_id": "video_clips",
        "is_paused": True,
        "max_active_runs": 4,
        "url": "/dags/video_clips",
    }
    run = requester.post("/reko/api/clips", json={"subject": "257"}).json()
    try:
        assert (
            run["state"] == "queued" and run["dag_paused"] is True and run["dag_url"] == "/dags/video_clips"
        )
        assert run["waiting"].startswith("video_clips is paused: unpause it in Airflow")
        followed = requester.get(f"/reko/api/clips/runs/{run['dag_run_id']}").json()
        assert followed["waiting"] == run["waiting"]
        clips_dag_paused(False)  # unpaused: a fresh queued run just waits for the scheduler
        followed = requester.get(f"/reko/api/clips/runs/{run['dag_run_id']}").json()
        assert followed["dag_paused"] is False and followed["waiting"] is None and followed["queued_s"] < 30
        assert requester.get("/reko/api/clips/dag").json()["is_paused"] is False
    finally:
        api.delete(f"/api/v2/dags/video_clips/dagRuns/{run['dag_run_id']}")


def test_a_clip_run_queued_too_long_says_why(
    airflow_app, api, web_data, airflow_in_process, clips_dag_paused
):
    from datetime import timedelta

    from airflow.utils import timezone

    clips_dag_paused(False)
    requester = as_user(airflow_app, "clip_requester")
    run_ids = [
        requester.post("/reko/api/clips", json={"subject": f"78{i}"}).json()["dag_run_id"] for i in range(5)
    ]
    try:
        mine = run_ids[0]
        set_run(mine, queued_at=timezone.utcnow() - timedelta(seconds=95))
        run = requester.get(f"/reko/api/clips/runs/{mine}").json()
        assert run["state"] == "queued" and 94 < run["queued_s"] < 200
        assert run["waiting"].startswith("Queued for 9") and "scheduler" in run["waiting"]
        for other in run_ids[1:]:  # max_active_runs (4) taken by other runs
            set_run(other, state="running")
        run = requester.get(f"/reko/api/clips/runs/{mine}").json()
        assert "4 other video_clips runs are running (max_active_runs 4)" in run["waiting"]
        set_run(mine, state="running")
        assert requester.get(f"/reko/api/clips/runs/{mine}").json()["waiting"] is None
    finally:
        for run_id in run_ids:
            api.delete(f"/api/v2/dags/video_clips/dagRuns/{run_id}")


# --- cross-site requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # sandboxed frames, data: URLs
        {"Origin": "http://testserver.evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_a_cross_site_clip_request_is_refused(airflow_app, api, web_data, airflow_in_process, headers):
    requester = as_user(airflow_app, "clip_requester")

    def runs() -> int:  # other tests request clips too: count, do not look for their subjects
        return api.get("/api/v2/dags/video_clips/dagRuns", params={"limit": 1}).json()["total_entries"]

    before = runs()
    for body in ({"subject": "1042"}, {"subject": ""}):  # refused before the body is even read
        resp = requester.post("/reko/api/clips", json=body, headers=headers)
        assert resp.status_code == 403, (headers, resp.status_code, resp.text)
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["detail"].startswith("Cross-site request refused")
    assert runs() == before  # nothing was triggered


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://testserver"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked by the user
        {},  # not a browser: an API client with its own token
    ],
)
def test_a_same_origin_clip_request_is_accepted(airflow_app, api, web_data, airflow_in_process, headers):
    requester = as_user(airflow_app, "clip_requester")
    resp = requester.post("/reko/api/clips", json={"subject": "908"}, headers=headers)
    assert resp.status_code == 201, (headers, resp.text)
    api.delete(f"/api/v2/dags/video_clips/dagRuns/{resp.json()['dag_run_id']}")
    cross = {"Origin": "https://evil.example"}  # reads are not state-changing: no check
    assert requester.get("/reko/api/clips", params={"subject": "web test"}, headers=cross).status_code == 200


# --- headers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [*ROUTES, ("GET", "/reko/static/nope.js")])
def test_every_response_says_nosniff(api, anon, web_data, airflow_in_process, method, path):
    for client in (api, anon):  # answered (200/201/400/404/502...) and refused (401)
        resp = client.request(method, path, json={"subject": ""} if method == "POST" else None)
        assert resp.headers.get("x-content-type-options") == "nosniff", (path, resp.status_code)


def test_a_server_error_says_nosniff_too(airflow_app, token, web_data, monkeypatch):
    from fastapi.testclient import TestClient

    from reko.web import app as web_app

    def broken():
        raise RuntimeError("the index is down")

    monkeypatch.setattr(web_app, "_client", broken)
    client = TestClient(
        airflow_app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False
    )
    resp = client.get("/reko/api/videos")
    assert resp.status_code == 500 and resp.headers.get("x-content-type-options") == "nosniff"


def test_the_csp_admits_media_only_from_the_app_for_a_file_root(api):
    csp = api.get("/reko/").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["img-src"] == "'self' data:" and directives["media-src"] == "'self'"
    assert "https:" not in csp and "*" not in csp


# --- bad input from the caller or the index ----------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        ["v", "x", "text", 0],  # a string for the integer frame_index
        ["v", 1, "text", True],  # a boolean for the integer ordinal
        ["v", 1.5, "text", 0],
        ["v", 2**63, "text", 0],  # beyond OpenSearch's integer
        ["v", -1, "text", 0],
        ["v", 1e300, "text", 0],
        [1, 1, "text", 0],  # a number for the keyword video_id
        ["v", 1, "", 0],
        ["v", 1, "text", 0, 9],
    ],
)
def test_a_forged_cursor_is_a_400(api, web_data, values):
    from reko.web.search import encode_cursor

    resp = api.get("/reko/api/search", params={"text": "MARATHON", "after": encode_cursor(values)})
    assert resp.status_code == 400, (values, resp.status_code, resp.text[:300])
    assert "after is not a cursor" in resp.json()["detail"]


BAD_FRAME_URIS = [
    "file://[::1/x.jpg",  # urlsplit: Invalid IPv6 URL
    "{root}/baduri/i1000ms/frames//race.0000001.jpg",  # an empty segment under the root
    "{root}/baduri/i1000ms/frames/race.0000001.json",  # not media
    "{root}/baduri/../../etc/passwd.jpg",
    42,  # not even a string
]


def test_a_malformed_frame_uri_in_the_index_costs_its_image_not_the_search(api, web_data, os_client):
    from reko.config import work_uri
    from reko.index.client import IndexNames

    names = IndexNames.current()
    root = work_uri().rstrip("/")
    good = search(api, text="1042")["videos"][0]["frames"][0]
    ids = []
    for i, uri in enumerate([*BAD_FRAME_URIS, None]):
        doc_id = f"baduri-0000000000:{i:07d}:text:000"
        frame_uri = uri.format(root=root) if isinstance(uri, str) else uri
        body = {"video_id": "baduri-0000000000", "frame_index": i, "timestamp_ms": i * 1000, "ordinal": 0}
        body |= {"kind": "text", "text_type": "WORD", "value": "BADURI7", "value_norm": "BADURI7"}
        body |= {"confidence": 95.0, "frame_uri": frame_uri}
        os_client.index(index=names.detections, id=doc_id, body=body, refresh=True)
        ids.append(doc_id)
    try:
        resp = api.get("/reko/api/search", params={"text": "BADURI7"})
        assert resp.status_code == 200, resp.text[:300]
        (video,) = resp.json()["videos"]
        assert len(video["frames"]) == len(BAD_FRAME_URIS) + 1
        assert [f["frame_url"] for f in video["frames"]] == [None] * (len(BAD_FRAME_URIS) + 1)
        assert search(api, text="1042")["videos"][0]["frames"][0]["frame_url"] == good["frame_url"]
    finally:
        for doc_id in ids:
            os_client.delete(index=names.detections, id=doc_id, refresh=True)


def test_key_of_refuses_rather_than_raises():
    from reko.web.media import StorageRoot

    local = StorageRoot.parse("file:///data/work")
    s3 = StorageRoot.parse("s3://conn@bucket/work")
    for root, base in ((local, "file:///data/work"), (s3, "s3://bucket/work")):
        for uri in BAD_FRAME_URIS + ["s3://[bucket/x.jpg", ["a"], {"x": 1}, "", None]:
            assert root.key_of(uri.format(root=base) if isinstance(uri, str) else uri) is None, uri
    assert local.key_of("file:///data/work/v/f.jpg") == "v/f.jpg"


def test_the_plugin_registers_a_nav_item_and_a_dag_tab(api):
    plugins = api.get("/api/v2/plugins").json()["plugins"]
    (reko,) = [p for p in plugins if p["name"] == "reko"]
    views = {v["destination"]: v for v in reko["external_views"]}
    assert views["nav"]["name"] == "Video search" and views["nav"]["href"] == "/reko/"
    assert "{DAG_ID}" in views["dag"]["href"]
    assert reko["fastapi_apps"][0]["url_prefix"] == "/reko"


# --- search ---------------------------------------------------------------------------------------


def test_every_bib_is_found_in_the_frames_where_it_is_shown(api, web_data, sample_truth):
    for bib in sample_truth["bibs"]:
        page = search(api, text=bib["text"])
        (video,) = page["videos"]
        assert video["video_id"] == web_data["video_id"]
        times = [f["timestamp_ms"] for f in video["frames"]]
        assert times == sorted(times) and len(set(times)) == len(times)
        for ms in times:  # every frame returned lies in a true segment (1 s sampling)
            assert any(
                s["start_s"] * 1000 - 1000 <= ms <= s["end_s"] * 1000 + 1000 for s in bib["segments"]
            ), (
                bib["text"],
                ms,
            )
        for seg in bib["segments"]:  # and every true segment of a second or more has frames
            if seg["end_s"] - seg["start_s"] >= 1:
                assert any(seg["start_s"] * 1000 - 1000 <= ms <= seg["end_s"] * 1000 + 1000 for ms in times)
        for frame in video["frames"]:
            (det,) = frame["detections"]  # the WORD only: a one-word LINE would draw the box twice
            assert det["text"] == bib["text"] and 80 <= det["confidence"] <= 100
            box = det["bbox"]
            assert 0 <= box["left"] < 1 and 0 <= box["top"] < 1 and 0 < box["width"] < 0.5
            assert frame["frame_url"].startswith("/reko/media/") and frame["frame_url"].endswith(".jpg")
        assert video["video"]["duration_ms"] == 38_000
        assert [s["value"] for s in video["segments"]] == [bib["text"]] * len(video["segments"])
        assert len(video["segments"]) >= 1


def test_text_is_matched_normalised_and_in_korean(api, web_data):
    lower = search(api, text="  marathon ")
    upper = search(api, text="MARATHON")
    assert lower["total"] == upper["total"] == 38
    korean = search(api, text="마라톤")
    assert korean["total"] == 10 and {
        d["text"] for v in korean["videos"] for f in v["frames"] for d in f["detections"]
    } == {"마라톤"}
    line = search(api, text="서울 국제 마라톤")
    assert line["total"] == 10
    assert {d["text_type"] for v in line["videos"] for f in v["frames"] for d in f["detections"]} == {"LINE"}


def test_paging_returns_every_hit_once(api, web_data):
    rows, total, pages = all_pages(api, text="MARATHON", size=7)
    assert total == 38 and len(rows) == 38 and len(set(rows)) == 38 and pages == 6
    one_page, _, _ = all_pages(api, text="MARATHON", size=500)
    assert sorted(rows) == sorted(one_page)


def test_the_confidence_range_filters_hits(api, web_data, os_client):
    from reko.index.client import IndexNames

    confs = sorted(
        h["_source"]["confidence"]
        for h in os_client.search(
            index=IndexNames.current().detections,
            body={
                "size": 100,
                "query": {
                    "bool": {
                        "filter": [{"term": {"value_norm": "3318"}}],
                        "must_not": [{"term": {"text_type": "LINE"}}],
                    }
                },
            },
        )["hits"]["hits"]
    )
    mid = confs[len(confs) // 2]
    high = search(api, text="3318", min_confidence=mid, size=500)
    low = search(api, text="3318", min_confidence=0, max_confidence=mid - 0.0005, size=500)
    got = lambda r: [d["confidence"] for v in r["videos"] for f in v["frames"] for d in f["detections"]]  # noqa: E731
    assert sorted(got(high)) == [c for c in confs if c >= mid]
    assert sorted(got(low)) == [c for c in confs if c < mid]
    assert high["total"] + low["total"] == len(confs)
    # a word the reader was unsure of (50-80 %): hidden by the page's default floor, shown from 50
    unsure = os_client.search(
        index=IndexNames.current().detections,
        body={
            "size": 1,
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"text_type": "WORD"}},
                        {"range": {"confidence": {"gte": 50, "lt": 80}}},
                    ]
                }
            },
            "sort": [{"frame_index": "asc"}, {"ordinal": "asc"}],
        },
    )["hits"]["hits"]
    assert unsure, "the sample has no word read at 50-80 %"
    text = unsure[0]["_source"]["value"]
    assert all(
        d["confidence"] >= 80
        for v in search(api, text=text)["videos"]
        for f in v["frames"]
        for d in f["detections"]
    )
    assert search(api, text=text, min_confidence=50)["total"] >= 1


def test_the_video_filter_and_empty_results(api, web_data):
    assert search(api, text="1042", video_id="no-such-video") == {
        "text": "1042",
        "value_norm": "1042",
        "total": 0,
        "videos": [],
        "next": None,
    }
    assert search(api, text="99999")["videos"] == []
    only = search(api, text="1042", video_id=web_data["video_id"])
    assert only["total"] == 10 // 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text": " "}, "text is required"),
        ({"text": "1042", "min_confidence": 90, "max_confidence": 80}, "is above max_confidence"),
        ({"text": "1042", "after": "not-a-cursor"}, "after is not a cursor"),
    ],
)
def test_bad_search_input_is_a_clear_400(api, params, message):
    resp = api.get("/reko/api/search", params=params)
    assert resp.status_code == 400 and message in resp.json()["detail"]


@pytest.mark.parametrize(
    "params", [{"text": "1042", "size": 10_000}, {"text": "1042", "min_confidence": -1}, {}]
)
def test_out_of_range_parameters_are_refused(api, params):
    assert api.get("/reko/api/search", params=params).status_code == 422


def test_markup_in_a_detection_comes_back_as_data(api, web_data):
    page = search(api, text=XSS, min_confidence=0)
    (video,) = page["videos"]
    assert video["video_id"] == XSS_VIDEO and video["frames"][0]["detections"][0]["text"] == XSS
    page_html = api.get("/reko/").text
    assert "onerror" not in page_html  # the page is static; data only ever arrives as JSON


# --- videos, clips, media --------------------------------------------------------------------------


def test_videos_lists_the_analysed_sample_with_counts_and_a_thumbnail(api, web_data):
    videos = api.get("/reko/api/videos").json()["videos"]
    (sample,) = [v for v in videos if v["video_id"] == web_data["video_id"]]
    assert sample["status"] == "complete" and sample["frame_count"] == 38 and sample["duration_ms"] == 38_000
    assert sample["counts"]["detections"] > 100 and sample["counts"]["failed_frames"] == 0
    assert sample["dag_id"] == "video_analysis" and sample["run_id"]
    thumb = api.get(sample["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    assert api.get("/reko/api/videos", params={"dag_id": "video_analysis"}).json()["videos"]
    assert api.get("/reko/api/videos", params={"dag_id": "other_dag"}).json() == {"videos": []}


def test_frames_are_streamed_from_the_storage_root(api, web_data):
    frame = search(api, text="1042")["videos"][0]["frames"][0]
    resp = api.get(frame["frame_url"])
    assert resp.status_code == 200 and resp.content[:2] == b"\xff\xd8"
    assert "private" in resp.headers["cache-control"]


def test_clips_are_listed_by_subject_and_playable(api, web_data):
    (clip,) = api.get("/reko/api/clips", params={"subject": "web test"}).json()["clips"]
    assert clip["video_id"] == web_data["video_id"] and clip["clip_url"].endswith("/clip.mp4")
    resp = api.get(clip["clip_url"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    assert resp.content == web_data["clip_path"].read_bytes()
    partial = api.get(clip["clip_url"], headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100  # seeking in the player
    assert api.get("/reko/api/clips", params={"subject": "nobody"}).json() == {"clips": []}
    assert api.get("/reko/api/clips", params={"run_id": "manual__web-test"}).json()["clips"]


@pytest.mark.parametrize(
    "key",
    [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "..%2F..%2F..%2Fetc%2Fpasswd.jpg",
        "%2e%2e/%2e%2e/etc/hosts.jpg",
        "a/../../outside.jpg",
        "%2Fetc%2Fpasswd.jpg",
        "a//b.jpg",
        "x/results/local/text/race.0000001.json",
    ],
)
def test_the_media_route_refuses_paths_outside_the_root_or_not_media(api, web_data, key):
    resp = api.get(f"/reko/media/{key}")
    assert resp.status_code in (400, 404), (key, resp.status_code)
    assert b"root:" not in resp.content and resp.headers["content-type"] == "application/json"


def test_dot_segments_never_reach_a_file_outside_the_root(api, web_data):
    resp = api.get("/reko/media/../../../../../../etc/passwd")  # the client resolves the dots first
    assert b"root:" not in resp.content


def test_a_symlink_out_of_the_root_is_refused(api, web_data, tmp_path):
    from reko.config import work_uri
    from reko.web.media import StorageRoot

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8secret")
    link = f"{StorageRoot.parse(work_uri()).path}/{web_data['video_id']}/leak.jpg"
    import os

    os.symlink(secret, link)
    try:
        resp = api.get(f"/reko/media/{web_data['video_id']}/leak.jpg")
        assert resp.status_code == 400 and b"secret" not in resp.content
    finally:
        os.unlink(link)


def test_a_clip_request_without_a_subject_is_refused(api):
    assert api.post("/reko/api/clips", json={"subject": ""}).status_code == 422
    assert api.post("/reko/api/clips", json={"subject": "1042", "padding_s": -1}).status_code == 422


def test_an_s3_root_serves_frames_through_presigned_urls(api, monkeypatch):
    import json
    import urllib.request

    from reko.web import media
    from tests.support.moto_s3 import moto_s3

    with moto_s3("reko-web") as (endpoint, s3):
        monkeypatch.setenv(
            "AIRFLOW_CONN_WEB_S3",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        monkeypatch.setenv("REKO_WORK_URI", "s3://web_s3@reko-web/work")
        media._s3_hook.cache_clear()
        media.media_origins.cache_clear()
        s3.put_object(Bucket="reko-web", Key="work/v1/i1000ms/frames/race.0000001.jpg", Body=b"\xff\xd8jpeg")
        resp = api.get("/reko/media/v1/i1000ms/frames/race.0000001.jpg")
        assert resp.status_code == 307
        url = resp.headers["location"]
        assert url.startswith(f"{endpoint}/reko-web/work/v1/i1000ms/frames/race.0000001.jpg?")
        assert "Signature=" in url or "X-Amz-Signature=" in url
        with urllib.request.urlopen(url, timeout=10) as got:
            assert got.read() == b"\xff\xd8jpeg"
        assert api.get("/reko/media/..%2Fother%2Fx.jpg").status_code == 400
        assert resp.headers["x-content-type-options"] == "nosniff"
        media.media_origins.cache_clear()
        csp = api.get("/reko/").headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["img-src"] == f"'self' data: {endpoint}"  # the presigned URLs' origin only
        assert directives["media-src"] == f"'self' {endpoint}"
        assert "https:" not in csp
        media._s3_hook.cache_clear()
        media.media_origins.cache_clear()


def test_storage_uris_map_to_keys_only_under_the_root():
    from reko.web.media import StorageRoot

    s3 = StorageRoot.parse("s3://conn@bucket/work")
    assert s3.key_of("s3://bucket/work/v/f.jpg") == "v/f.jpg"
    assert s3.key_of("s3://other_conn@bucket/work/v/f.jpg") == "v/f.jpg"
    assert s3.key_of("s3://bucket2/work/v/f.jpg") is None
    assert s3.key_of("s3://bucket/workshop/v/f.jpg") is None
    local = StorageRoot.parse("file:///data/work")
    assert (
        local.key_of("file:///data/work/v/i1000ms/frames/a.0000001.jpg") == "v/i1000ms/frames/a.0000001.jpg"
    )
    assert local.key_of("file:///data/workshop/a.jpg") is None
    assert local.key_of("file:///etc/passwd") is None
    assert local.key_of("https://example.com/a.jpg") is None


def test_search_frames_is_callable_directly(os_client, web_data):
    from reko.index.client import IndexNames
    from reko.web.search import search_frames

    first = search_frames(os_client, IndexNames.current(), text="MARATHON", min_confidence=0, size=20)
    second = search_frames(
        os_client, IndexNames.current(), text="MARATHON", min_confidence=0, after=first["next"]
    )
    assert first["total"] == 38 and second["total"] is None and second["next"] is None
    frames = [f["frame_index"] for r in (first, second) for v in r["videos"] for f in v["frames"]]
    assert frames == list(range(38))
