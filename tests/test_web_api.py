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
    ("GET", "/reko/video/race-0000000000"),
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


# --- several bibs, partial numbers ----------------------------------------------------------------


def hits_of(api, text: str) -> set[tuple[int, str]]:
    rows, _, _ = all_pages(api, text=text, size=500)
    return {(frame, found) for _, frame, found in rows}


def test_several_bibs_are_searched_at_once(api, web_data):
    both = search(api, text="1042 257", size=500)
    assert hits_of(api, "1042 257") == hits_of(api, "1042") | hits_of(api, "257")
    assert both["total"] == search(api, text="1042")["total"] + search(api, text=" 257 ")["total"]
    (video,) = both["videos"]
    assert {p["number"] for p in video["passes"]} == {"1042", "257"}
    assert len(video["passes"]) == len(search(api, text="1042")["videos"][0]["passes"]) + len(
        search(api, text="257")["videos"][0]["passes"]
    )
    assert search(api, text="1042 1042")["total"] == search(api, text="1042")["total"]  # each once
    # words are still a phrase, not a list of words
    assert search(api, text="CITY MARATHON")["total"] > 0
    assert all(
        d["text_type"] == "LINE"
        for v in search(api, text="CITY MARATHON")["videos"]
        for f in v["frames"]
        for d in f["detections"]
    )


def test_a_phrase_inside_longer_lines_gets_a_timeline(api, web_data):
    """'CITY MARATHON' is read only inside the banner's line: no segment document is of it, so its
    timeline is merged from every hit (not only the first page's), as segments are merged."""
    first = search(api, text="city marathon", min_confidence=0, size=5)
    (video,) = first["videos"]
    segments = video["segments"]
    assert segments and all(s["derived"] for s in segments), segments
    rows, _, _ = all_pages(api, text="city marathon", min_confidence=0, size=500)
    frames = sorted({frame for _, frame, _ in rows})
    assert len(frames) > 5  # more than the first page
    interval = video["video"]["frame_interval_ms"]
    assert sum(s["frame_count"] for s in segments) == len(frames)
    assert segments[0]["start_ms"] == frames[0] * interval and segments[-1]["end_ms"] == frames[-1] * interval
    word = search(api, text="MARATHON", min_confidence=0)["videos"][0]["segments"]
    assert word and not any(s.get("derived") for s in word)  # a word keeps the index's segments


def test_a_clip_of_several_bibs_at_once_is_refused_with_the_reason(
    airflow_app, api, web_data, airflow_in_process
):
    before = api.get("/api/v2/dags/video_clips/dagRuns", params={"limit": 1}).json()["total_entries"]
    resp = as_user(airflow_app, "clip_requester").post("/reko/api/clips", json={"subject": "1042 257"})
    assert resp.status_code == 400 and "one bib at a time (1042 or 257)" in resp.json()["detail"], resp.text
    assert api.get("/api/v2/dags/video_clips/dagRuns", params={"limit": 1}).json()["total_entries"] == before


def test_a_partial_number_suggests_the_bibs_it_may_be(airflow_app, api, web_data):
    def suggested(text: str) -> list[str]:
        resp = api.get("/reko/api/suggest", params={"text": text})
        assert resp.status_code == 200, resp.text
        return [s["text"] for s in resp.json()["suggestions"]]

    assert suggested("104")[0] == "1042"
    assert "3318" in suggested("33") and "3318" in suggested(" 331")
    assert all(s.startswith("6") for s in suggested("60")) and "6094" in suggested("60")
    (entry,) = [
        s
        for s in api.get("/reko/api/suggest", params={"text": "104"}).json()["suggestions"]
        if s["text"] == "1042"
    ]
    assert entry["frames"] == search(api, text="1042", min_confidence=0)["total"] and entry["passes"] == 1
    for nothing in ("1", "1042", "MARA", "10 4", "9999"):
        assert suggested(nothing) == [], nothing
    assert (
        as_user(airflow_app, "hello_reader").get("/reko/api/suggest?text=104&dag_id=hello_dag").status_code
        == 403
    )


# --- export ---------------------------------------------------------------------------------------


def test_a_search_exports_as_csv_and_json(api, web_data):
    import csv
    import io

    resp = api.get("/reko/api/export", params={"text": "1042", "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv"), resp.text
    assert resp.headers["content-disposition"] == 'attachment; filename="reko-1042.csv"'
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    frames = search(api, text="1042", size=500)["videos"][0]["frames"]
    assert len(rows) == 5 == sum(len(f["detections"]) for f in frames)
    for row, frame in zip(rows, frames, strict=True):
        (det,) = frame["detections"]
        assert row["video"] == "race.mp4" and row["video_id"] == web_data["video_id"]
        assert int(row["frame_index"]) == frame["frame_index"]
        assert float(row["time_s"]) == frame["timestamp_ms"] / 1000
        assert row["text"] == "1042" and float(row["confidence"]) == det["confidence"]
        assert (
            float(row["box_left"]) == det["bbox"]["left"]
            and float(row["box_height"]) == det["bbox"]["height"]
        )
        assert row["frame_url"] == "http://testserver" + frame["frame_url"]
    assert api.get(rows[0]["frame_url"]).content[:2] == b"\xff\xd8"
    as_json = api.get("/reko/api/export", params={"text": "1042", "format": "json"}).json()
    assert as_json["truncated"] is False and len(as_json["hits"]) == 5
    assert [str(h["frame_index"]) for h in as_json["hits"]] == [r["frame_index"] for r in rows]
    assert as_json["hits"][0]["box_width"] == frames[0]["detections"][0]["bbox"]["width"]
    narrow = api.get("/reko/api/export", params={"text": "1042", "min_confidence": 100.0, "format": "json"})
    assert len(narrow.json()["hits"]) == sum(1 for f in frames if f["detections"][0]["confidence"] >= 100)


def test_a_runners_name_exports_the_frames_of_their_passes(api, web_data):
    shown = [f for v in search(api, text="Min-jun", size=500)["videos"] for f in v["frames"]]
    hits = api.get("/reko/api/export", params={"text": "Min-jun", "format": "json"}).json()["hits"]
    assert len(hits) == len(shown) > 0
    assert [h["frame_index"] for h in hits] == [f["frame_index"] for f in shown]
    assert all(h["text"].startswith("3318 Kim Min-jun") and h["text_type"] == "PASS" for h in hits)
    assert all(
        h["box_width"] == f["detections"][0]["bbox"]["width"] for h, f in zip(hits, shown, strict=True)
    )


FORMULAS = [
    '=HYPERLINK("http://evil.example","click, here")',
    "+1+2",
    "-3+4",
    "@SUM(A1:A2)",
    'plain, "quoted"',
]


def test_the_csv_export_quotes_and_defuses_formulas(api, web_data, os_client):
    import csv
    import io

    from reko.index.client import IndexNames

    names = IndexNames.current()
    frame = os_client.search(
        index=names.detections, body={"size": 1, "query": {"term": {"value_norm": "1042"}}}
    )
    src = frame["hits"]["hits"][0]["_source"]
    ids = []
    for i, value in enumerate(FORMULAS):
        doc_id = f"csv-check-0000000000:{i:07d}:text:000"
        body = {
            **src,
            "video_id": "csv-check-0000000000",
            "frame_index": i,
            "ordinal": 0,
            "timestamp_ms": i * 1000,
        }
        body |= {"value": value, "value_norm": "CSVCHECK7", "text_type": "WORD", "confidence": 95.0}
        os_client.index(index=names.detections, id=doc_id, body=body, refresh=True)
        ids.append(doc_id)
    try:
        resp = api.get("/reko/api/export", params={"text": "CSVCHECK7", "format": "csv"})
        assert resp.status_code == 200, resp.text
        texts = [row["text"] for row in csv.DictReader(io.StringIO(resp.text))]
        assert texts == ["'" + v for v in FORMULAS[:4]] + [FORMULAS[4]]
        assert '"\'=HYPERLINK(""http://evil.example"",""click, here"")"' in resp.text  # RFC 4180 quoting
        assert resp.text.splitlines()[0].split(",")[:3] == ["video_id", "video", "time_s"]
        as_json = api.get("/reko/api/export", params={"text": "CSVCHECK7", "format": "json"}).json()
        assert [h["text"] for h in as_json["hits"]] == FORMULAS  # JSON is data: left as read
    finally:
        for doc_id in ids:
            os_client.delete(index=names.detections, id=doc_id, refresh=True)


def test_the_export_is_checked_like_the_search(airflow_app, api, anon, web_data):
    for suffix in ("", "&dag_id=hello_dag"):
        resp = as_user(airflow_app, "hello_reader").get(f"/reko/api/export?text=1042{suffix}")
        assert resp.status_code == 403 and b"1042," not in resp.content
    assert anon.get("/reko/api/export?text=1042").status_code == 401
    assert api.get("/reko/api/export", params={"text": "1042", "format": "xlsx"}).status_code == 422
    assert api.get("/reko/api/export", params={"text": " "}).status_code == 400
    assert as_user(airflow_app, "analysis_reader").get("/reko/api/export?text=1042").status_code == 200


# --- no clip cut twice ------------------------------------------------------------------------------


def test_a_request_for_clips_being_cut_gets_that_run(airflow_app, api, web_data, airflow_in_process):
    requester = as_user(airflow_app, "clip_requester")
    body = {"subject": "1042", "video_ids": [web_data["video_id"]], "padding_s": 1.5}
    runs = []
    try:
        first = requester.post("/reko/api/clips", json=body)
        assert first.status_code == 201 and first.json()["reused"] is None, first.text
        runs.append(first.json()["dag_run_id"])
        for same in (body, {**body, "subject": " 1042 "}, {**body, "padding_s": 1.5, "merge_gap_s": 3}):
            again = requester.post("/reko/api/clips", json=same)
            assert again.status_code == 200, again.text
            assert again.json()["reused"] == "run" and again.json()["dag_run_id"] == runs[0]
        for other in ({**body, "padding_s": 4}, {**body, "video_ids": []}, {**body, "force": True}):
            new = requester.post("/reko/api/clips", json=other)
            assert new.status_code == 201 and new.json()["dag_run_id"] not in runs, (other, new.text)
            runs.append(new.json()["dag_run_id"])
    finally:
        for run_id in runs:
            api.delete(f"/api/v2/dags/video_clips/dagRuns/{run_id}")


def test_a_request_for_clips_that_exist_gets_them(airflow_app, api, web_data, airflow_in_process, os_client):
    from reko.index.client import IndexNames

    names = IndexNames.current()
    video_id = web_data["video_id"]
    doc = {"video_id": video_id, "kind": "text", "clip_uri": None, "start_ms": 1000, "end_ms": 9000}
    doc |= {"duration_s": 8.0, "run_id": "manual__done", "padding_ms": 2000, "merge_gap_ms": 3000}
    cut = {
        "done-1042": {**doc, "subject": "1042", "subject_norm": "1042"},
        "done-other": {**doc, "video_id": "other-0000000000", "subject": "257", "subject_norm": "257"},
    }
    for doc_id, body in cut.items():
        os_client.index(index=names.clips, id=doc_id, body=body, refresh=True)
    requester = as_user(airflow_app, "clip_requester")
    runs = []
    try:
        for body in ({"subject": "1042", "video_ids": [video_id]}, {"subject": "1042"}):
            resp = requester.post("/reko/api/clips", json=body)
            assert resp.status_code == 200 and resp.json()["reused"] == "clips", resp.text
            assert [c["start_ms"] for c in resp.json()["clips"]] == [1000]
        # not the same clips: other padding, or a video where 257 is seen has none
        for body in ({"subject": "1042", "padding_s": 0}, {"subject": "257"}):
            resp = requester.post("/reko/api/clips", json=body)
            assert resp.status_code == 201 and resp.json()["reused"] is None, (body, resp.text)
            runs.append(resp.json()["dag_run_id"])
        # who may trigger but not read video_clips gets a run, never its clips
        blind = as_user(airflow_app, "clip_trigger_only").post("/reko/api/clips", json={"subject": "1042"})
        assert blind.status_code == 201 and "clips" not in blind.json(), blind.text
        runs.append(blind.json()["dag_run_id"])
        # who may not trigger video_clips learns nothing more than before
        assert (
            as_user(airflow_app, "clip_reader").post("/reko/api/clips", json={"subject": "1042"}).status_code
            == 403
        )
    finally:
        for run_id in runs:
            api.delete(f"/api/v2/dags/video_clips/dagRuns/{run_id}")
        for doc_id in cut:
            os_client.delete(index=names.clips, id=doc_id, refresh=True)


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
    assert (
        views["nav"]["name"] == "Videos"
        and views["nav"]["url_route"] == "video-search"
        and views["nav"]["href"] == "/reko/"
    )
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


# --- the video itself (jump to the moment) ----------------------------------------------------------


def test_the_video_is_served_from_its_index_document_with_ranges(api, web_data):
    """The player seeks: a Range request gets 206 and exactly those bytes of the source file."""
    from tests.conftest import SAMPLE_VIDEO

    url = f"/reko/video/{web_data['video_id']}"
    whole = SAMPLE_VIDEO.read_bytes()
    part = api.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206, part.text[:200]
    assert part.headers["content-type"] == "video/mp4" and part.headers["accept-ranges"] == "bytes"
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole)}"
    assert part.content == whole[1000:2000]
    tail = api.get(url, headers={"Range": f"bytes={len(whole) - 10}-"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    assert api.get(url).content == whole
    assert api.get("/reko/video/no-such-video-0000000000").status_code == 404


def test_the_video_route_reads_only_what_the_video_document_names(api, web_data, os_client, tmp_path):
    """A document whose URI is not a video file (or has none) plays nothing; the request cannot
    name a file: query parameters are ignored and the path is a video id only."""
    from reko.index.client import IndexNames

    names = IndexNames.current()
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    cases = {"vid-bad-0000000001": secret.as_uri(), "vid-bad-0000000002": None}
    for video_id, uri in cases.items():
        os_client.index(
            index=names.videos, id=video_id, body={"video_id": video_id, "source_uri": uri}, refresh=True
        )
    try:
        for video_id in cases:
            resp = api.get(f"/reko/video/{video_id}", params={"uri": secret.as_uri(), "path": str(secret)})
            assert resp.status_code == 404 and b"root:" not in resp.content, resp.text
        resp = api.get(f"/reko/video/{web_data['video_id']}", params={"source_uri": secret.as_uri()})
        assert resp.status_code == 200 and resp.content[4:8] == b"ftyp"  # still the video's own file
        assert api.get("/reko/video/..%2F..%2Fetc%2Fpasswd").status_code == 404
    finally:
        for video_id in cases:
            os_client.delete(index=names.videos, id=video_id, refresh=True)


def test_the_video_needs_read_access_to_video_analysis(airflow_app, web_data):
    url = f"/reko/video/{web_data['video_id']}"
    for suffix in ("", "?dag_id=hello_dag"):
        resp = as_user(airflow_app, "hello_reader").get(url + suffix, headers={"Range": "bytes=0-99"})
        assert resp.status_code == 403 and resp.content[4:8] != b"ftyp", resp.text[:200]
    assert (
        as_user(airflow_app, "analysis_reader").get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    )


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
    both = api.post("/reko/api/clips", json={"subject": "1042", "face_id": "v:0000001:face:000"})
    assert both.status_code == 422 and "not both" in both.text
    assert api.post("/reko/api/clips", json={"face_id": "x", "face_threshold": 101}).status_code == 422


def test_a_clip_request_names_a_person_by_a_face_id(airflow_app, api, web_data, airflow_in_process):
    """The page asks for clips of the person it found by photo with the face id of the best match
    (the photo itself is never sent on); `face:<id>` as the subject means the same."""
    requester = as_user(airflow_app, "clip_requester")
    face_id = f"{web_data['video_id']}:0000003:face:000"
    runs = []
    try:
        resp = requester.post(
            "/reko/api/clips", json={"face_id": face_id, "face_threshold": 90, "force": True}
        )
        assert resp.status_code == 201, resp.text
        runs.append(resp.json())
        conf = runs[0]["conf"]
        assert (conf["subject"], conf["face_id"], conf["face_threshold"]) == ("", face_id, 90)
        again = requester.post("/reko/api/clips", json={"subject": f"face:{face_id}", "face_threshold": 90})
        assert again.status_code == 200 and again.json()["reused"] == "run", again.text
        other = requester.post("/reko/api/clips", json={"face_id": face_id, "face_threshold": 95})
        assert other.status_code == 201, other.text  # another threshold is another person's clips
        runs.append(other.json())
    finally:
        for run in runs:
            api.delete(f"/api/v2/dags/video_clips/dagRuns/{run['dag_run_id']}")


def test_an_s3_root_serves_frames_through_presigned_urls(api, monkeypatch):
    import json
    import urllib.request

    from reko.localdev.moto_s3 import moto_s3
    from reko.web import media

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


def test_an_s3_video_is_played_through_a_presigned_url_with_ranges(api, monkeypatch, web_data, os_client):
    """The video document names an s3:// source (with its connection id): the route redirects to a
    presigned URL of that object, which answers range requests itself."""
    import json
    import urllib.request

    from reko.index.client import IndexNames
    from reko.localdev.moto_s3 import moto_s3
    from reko.web import media
    from tests.conftest import SAMPLE_VIDEO

    names = IndexNames.current()
    video_id = "s3-race-0000000000"
    with moto_s3("reko-in") as (endpoint, s3):
        conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
        conn["extra"] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        monkeypatch.setenv("AIRFLOW_CONN_WEB_IN", json.dumps(conn))
        media._s3_hook.cache_clear()
        s3.put_object(Bucket="reko-in", Key="races/race.mp4", Body=SAMPLE_VIDEO.read_bytes())
        body = {"video_id": video_id, "source_uri": "s3://web_in@reko-in/races/race.mp4"}
        os_client.index(index=names.videos, id=video_id, body=body, refresh=True)
        try:
            resp = api.get(f"/reko/video/{video_id}")
            assert resp.status_code == 307, resp.text
            url = resp.headers["location"]
            assert url.startswith(f"{endpoint}/reko-in/races/race.mp4?") and "Signature=" in url
            req = urllib.request.Request(url, headers={"Range": "bytes=100-199"})
            with urllib.request.urlopen(req, timeout=10) as got:
                assert got.status == 206 and got.read() == SAMPLE_VIDEO.read_bytes()[100:200]
        finally:
            os_client.delete(index=names.videos, id=video_id, refresh=True)
            media._s3_hook.cache_clear()


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
