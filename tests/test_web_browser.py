# ruff: noqa: F811  (pytest fixtures imported from tests.support.web_data are parameters here)
"""The search page in headless Chromium, served by a real Airflow deployment on 127.0.0.1.

api-server, scheduler, dag-processor and triggerer are the session's shared deployment (its
indices emptied for this module: `SharedDeployment.use`); the browser logs
in with a token from Airflow's own `/auth/token` (the UI's `_token` cookie). Debian's
/usr/bin/chromium is driven by Playwright (never a downloaded browser). Screenshots of every
view are written to tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.support.web_data import XSS, analysed_sample, web_data  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def own_indices(shared_airflow):
    """The shared deployment's indices, emptied first and this module's alone while it runs: other
    modules index copies of the sample too, and the page's counts (hits, videos, pages) must be the
    sample's only. The page (api-server) and video_clips (task processes) use the same prefix."""
    with shared_airflow.use(["video_clips"], own_indices=True):
        yield shared_airflow.index_prefix


@pytest.fixture(scope="module")
def deployment(shared_airflow, own_indices, web_data):
    """The shared deployment's four services, with this session's storage root."""
    return shared_airflow.services


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def new_tab(browser, deployment, width: int = 1360, height: int = 900, **options):
    """A logged-in tab: the token goes into the cookie the Airflow UI itself uses."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    context.add_cookies([{"name": "_token", "value": deployment.token(), "url": deployment.url}])
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.console_errors = []
    tab.on("console", lambda m: m.type == "error" and tab.console_errors.append(m.text))
    return tab


@pytest.fixture
def page(browser, deployment):
    tab = new_tab(browser, deployment)
    yield tab
    tab.context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_real_api_server_refuses_anonymous_calls_and_sends_browsers_to_login(deployment):
    for path in ("/reko/api/search?text=1042", "/reko/api/videos", "/reko/media/x/y.jpg"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(deployment.url + path, timeout=10)
        assert err.value.code == 401, path
    req = urllib.request.Request(deployment.url + "/reko/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # follows the redirect to the login page
        assert "/auth/" in resp.url or "login" in resp.url


def test_videos_page_lists_the_sample(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=videos")
    card = page.locator(f'.video-card[data-video-id="{web_data["video_id"]}"]')
    card.wait_for()
    assert card.locator("h2").inner_text() == "race.mp4"
    assert card.locator(".badge").inner_text() == "complete"
    assert "0:38" in card.inner_text() and "38" in card.locator(".stat").nth(1).inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.video-card img.thumb')].every(i => i.naturalWidth > 0)"
    )
    href = card.get_by_text("Last run").get_attribute("href")
    assert href.startswith("/dags/video_analysis/runs/")
    shot(page, "videos")


def test_times_are_in_the_timezone_airflows_ui_shows(browser, deployment, web_data):
    """The UI keeps its user's timezone in localStorage ("timezone", JSON): the page uses it too."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    req = urllib.request.Request(
        f"{deployment.url}/reko/api/videos", headers={"Authorization": f"Bearer {deployment.client().token}"}
    )
    videos = json.load(urllib.request.urlopen(req, timeout=30))["videos"]
    (video,) = [v for v in videos if v["video_id"] == web_data["video_id"]]
    at = datetime.fromisoformat(video["processed_at"].replace("Z", "+00:00"))
    for zone, label in (("Asia/Seoul", "GMT+9"), ("America/Los_Angeles", None), ("UTC", "UTC")):
        tab = new_tab(browser, deployment, timezone_id="Europe/Berlin")  # the browser's own zone differs
        try:
            tab.add_init_script(f"localStorage.setItem('timezone', {json.dumps(json.dumps(zone))})")
            tab.goto(f"{deployment.url}/reko/?view=videos")
            text = tab.locator(f'.video-card[data-video-id="{web_data["video_id"]}"] .analysed').inner_text()
            assert at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") in text, (zone, text)
            assert label is None or text.endswith(label), (zone, text)
        finally:
            tab.context.close()


NAMED_VIDEOS = {  # video id: (source URI, the name the page must show)
    "names-d-0000000004": ("s3://bucket/promo/50% off.mp4", "50% off.mp4"),  # a bare "%"
    "names-a-0000000001": ("s3://bucket/2024/lap.mp4", "2024/lap.mp4"),
    "names-b-0000000002": ("s3://bucket/2025/lap.mp4", "lap.mp4 · names-b-0000000002"),
    "names-c-0000000003": ("s3://bucket/other/2025/lap.mp4", "lap.mp4 · names-c-0000000003"),
    "names-e-0000000005": ("s3://bucket/promo/caf%C3%A9.mp4", "café.mp4"),
}


def test_video_names_survive_a_bare_percent_and_tell_same_names_apart(page, deployment, web_data, os_client):
    from reko.index.client import IndexNames

    names = IndexNames.current()
    for video_id, (uri, _) in NAMED_VIDEOS.items():
        body = {"video_id": video_id, "source_uri": uri, "dag_id": "video_analysis", "status": "complete"}
        body |= {"duration_ms": 60_000, "frame_count": 60, "processed_at": "2020-01-01T00:00:00Z"}
        os_client.index(index=names.videos, id=video_id, body=body, refresh=True)
    try:
        page.goto(f"{deployment.url}/reko/?view=videos")
        page.locator(f'.video-card[data-video-id="{web_data["video_id"]}"]').wait_for()
        for video_id, (_, shown) in NAMED_VIDEOS.items():
            assert page.locator(f'.video-card[data-video-id="{video_id}"] h2').inner_text() == shown
        shot(page, "videos-names")
        page.goto(f"{deployment.url}/reko/?view=search")
        page.wait_for_function("() => document.querySelectorAll('#video-filter option').length > 5")
        options = page.locator("#video-filter option").all_inner_texts()
        assert (
            "50% off.mp4 · names-d-0000000004" in options and "2024/lap.mp4 · names-a-0000000001" in options
        )
        assert not page.console_errors
    finally:
        for video_id in NAMED_VIDEOS:
            os_client.delete(index=names.videos, id=video_id, refresh=True)


def test_a_box_at_the_right_edge_keeps_its_label_in_the_frame(page, deployment, web_data, os_client):
    from reko.index.client import IndexNames

    names = IndexNames.current()
    hit = os_client.search(
        index=names.detections, body={"size": 1, "query": {"term": {"value_norm": "1042"}}}
    )
    src = hit["hits"]["hits"][0]["_source"]
    doc_id = f"{src['video_id']}:{src['frame_index']:07d}:text:099"
    body = {
        **src,
        "ordinal": 99,
        "value": "EDGE9876 LONG LABEL",
        "value_norm": "EDGE9876",
        "text_type": "WORD",
    }
    body |= {"confidence": 97.0, "bbox": {"left": 0.9, "top": 0.4, "width": 0.08, "height": 0.1}}
    os_client.index(index=names.detections, id=doc_id, body=body, refresh=True)
    try:
        page.goto(f"{deployment.url}/reko/?view=search&text=EDGE9876")
        page.wait_for_selector(".frame .box .label")
        page.wait_for_function("() => [...document.querySelectorAll('.frame img')].every(i => i.complete)")
        label, img = page.evaluate(
            """() => [document.querySelector('.frame .box .label'), document.querySelector('.frame img')]
                .map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; })"""
        )
        assert label[1] - label[0] > 60  # the whole text, not an ellipsis
        assert img[0] - 1 <= label[0] and label[1] <= img[1] + 1, (label, img)
        shot(page, "search-right-edge")
    finally:
        os_client.delete(index=names.detections, id=doc_id, refresh=True)


def frame_rows(page) -> list[dict]:
    return page.evaluate(
        """() => [...document.querySelectorAll('.video-result .frame')].map(f => ({
            caption: f.querySelector('figcaption').innerText,
            labels: [...f.querySelectorAll('.box .label')].map(l => l.textContent),
            loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0,
            box: (() => { const b = f.querySelector('.box').getBoundingClientRect();
                          const i = f.querySelector('img').getBoundingClientRect();
                          return [(b.left - i.left) / i.width, (b.top - i.top) / i.height]; })(),
        }))"""
    )


def test_searching_each_bib_shows_its_frames_with_boxes(page, deployment, web_data, sample_truth):
    api = deployment.client()
    for bib in sample_truth["bibs"]:
        page.goto(f"{deployment.url}/reko/?view=search&text={bib['text']}")
        page.wait_for_selector(".video-result .frame")
        page.wait_for_function("() => [...document.querySelectorAll('.frame img')].every(i => i.complete)")
        rows = frame_rows(page)
        req = urllib.request.Request(
            f"{deployment.url}/reko/api/search?text={bib['text']}&size=500",
            headers={"Authorization": f"Bearer {api.token}"},
        )
        expected = json.load(urllib.request.urlopen(req, timeout=30))["videos"][0]["frames"]
        assert len(rows) == len(expected) > 0
        for row, frame in zip(rows, expected, strict=True):
            assert row["loaded"]
            assert f"frame {frame['frame_index']}" in row["caption"]
            (det,) = frame["detections"]
            assert row["labels"] == [f"{bib['text']} ({round(det['confidence'])}%)"]
            assert (
                abs(row["box"][0] - det["bbox"]["left"]) < 0.02
                and abs(row["box"][1] - det["bbox"]["top"]) < 0.02
            )
        assert page.locator(".timeline .seg.pass").count() == len(bib["segments"])  # one bar per pass
        assert page.locator(".timeline .seg").count() == len(bib["segments"])  # and no word segments
        if bib["text"] == "3318":
            shot(page, "search-3318")
    assert not page.dialogs and not page.console_errors


def test_a_runners_name_finds_their_passes_and_frames(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&text=Min-jun")
    page.wait_for_selector(".video-result .frame")
    assert page.locator(".video-result").count() == 1
    assert page.locator(".timeline .seg.pass").count() == 2  # 3318 passes twice (a lap)
    assert page.locator("#search-status").inner_text().startswith("2 runner passes of “Min-jun”")
    captions = page.locator(".frame figcaption span:first-child").all_inner_texts()
    seconds = [int(c.split(" · ")[0].split(":")[1]) for c in captions]
    assert min(seconds) < 19 < max(seconds)  # frames of both passes (about 9-16 s and 27-33 s)
    assert "2 runner passes" in page.locator(".video-result .meta").inner_text()
    labels = set(page.locator(".frame .box .label").all_text_contents())
    assert labels and all(label.startswith("3318 Kim Min-jun") for label in labels)
    titles = page.locator(".timeline .seg.pass").evaluate_all("bars => bars.map(b => b.title)")
    assert all(t.startswith("3318 Kim Min-jun · ") for t in titles)
    loaded = "() => [...document.querySelectorAll('.frame img')].every(i => i.naturalWidth > 0)"
    page.wait_for_function(loaded)
    shot(page, "search-name")
    assert not page.dialogs and not page.console_errors


def test_a_partial_number_offers_bibs_and_several_bibs_are_found_at_once(page, deployment, web_data):
    # The search for "104" is held until the chip's own search is shown: a chip clicked while the
    # first search is still on its way must search at once, and the late answer must not replace it.
    held = []
    page.route(re.compile(r".*/reko/api/search\?text=104&.*"), lambda route: held.append(route))
    page.goto(f"{deployment.url}/reko/?view=search&text=104")
    chip = page.locator('#suggest button.chip[data-text="1042"]')
    chip.wait_for()
    assert page.locator("#suggest").inner_text().startswith("Bibs starting with 104:")
    page.wait_for_function("() => document.querySelector('#search-status').textContent === 'Searching…'")
    assert len(held) == 1
    chip.click()
    page.wait_for_url(re.compile(r".*text=1042(&|$)"))
    page.wait_for_selector(".video-result .frame")
    assert page.locator("#q").input_value() == "1042" and page.locator("#suggest").is_hidden()
    status = page.locator("#search-status").inner_text()
    assert "of “1042”" in status
    held[0].continue_()
    page.wait_for_load_state("networkidle")
    assert page.locator("#search-status").inner_text() == status
    page.goto(f"{deployment.url}/reko/?view=search&text=1042%20257")
    page.wait_for_selector(".video-result .frame")
    labels = {label.split(" (")[0] for label in page.locator(".frame .box .label").all_text_contents()}
    assert labels == {"1042", "257"}
    bars = page.locator(".timeline .seg.pass").evaluate_all("bars => bars.map(b => b.title.split(' ')[0])")
    assert set(bars) == {"1042", "257"}
    assert not page.console_errors


def test_markup_read_in_a_frame_is_shown_as_text(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&min=0")
    page.fill("#q", XSS)
    page.click("#search-form button[type=submit]")
    label = page.locator(".box .label").first
    label.wait_for()
    assert label.text_content() == f"{XSS} (92%)"
    assert page.locator('img[src="x"]').count() == 0
    page.wait_for_timeout(300)
    assert page.dialogs == []
    shot(page, "search-xss")


def test_empty_results_and_paging(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&text=99999")
    page.wait_for_selector(".empty")
    assert "No frames show" in page.locator(".empty").inner_text()
    shot(page, "search-empty")
    page.goto(f"{deployment.url}/reko/?view=search&text=MARATHON&min=0&size=10")
    page.wait_for_selector(".frame")
    assert (
        page.locator(".frame").count() == 10
        and "38 detections" in page.locator("#search-status").inner_text()
    )
    for shown in (20, 30, 38):
        page.click("#load-more")
        page.wait_for_function(f"() => document.querySelectorAll('.frame').length === {shown}")
    assert page.locator("#load-more").is_hidden()
    captions = page.locator(".frame figcaption span:first-child").all_inner_texts()
    assert [int(c.rsplit(" ", 1)[1]) for c in captions] == list(range(38))  # each frame once, in order


def test_the_flip_book_plays_pauses_and_steps(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&text=908")
    page.wait_for_selector(".frame")
    frames = page.locator(".frame").count()
    page.get_by_role("button", name="Flip-book", exact=True).click()
    pos = page.locator("#fb-pos")
    assert pos.inner_text().startswith(f"1 / {frames}")
    assert page.locator("#fb-stage .box .label").inner_text().startswith("908 (")
    page.click("#fb-next")
    assert pos.inner_text().startswith(f"2 / {frames}")
    page.click("#fb-prev")
    assert pos.inner_text().startswith(f"1 / {frames}")
    page.select_option("#fb-speed", "4")
    page.click("#fb-play")
    assert page.locator("#flipbook").get_attribute("data-playing") == "true"
    page.wait_for_function(f"() => !document.querySelector('#fb-pos').innerText.startsWith('1 / {frames}')")
    page.click("#fb-play")
    assert page.locator("#flipbook").get_attribute("data-playing") == "false"
    paused_at = pos.inner_text()
    page.wait_for_timeout(600)
    assert pos.inner_text() == paused_at
    page.wait_for_function("() => document.querySelector('#fb-stage img').complete")
    shot(page, "flipbook")
    page.keyboard.press("Escape")
    assert page.locator("#flipbook").is_hidden()


def test_requesting_a_clip_runs_video_clips_and_plays_it(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=clips&subject=6094")
    page.wait_for_selector(".empty")
    page.click("#request-clip")
    run = page.locator("#clip-run")
    run.wait_for()
    assert re.match(r"(queued|running)", run.get_attribute("data-state") or "")
    shot(page, "clips-running")
    page.wait_for_selector('#clip-run[data-state="success"]', timeout=240_000)
    video = page.locator(".clip video").first
    video.wait_for()
    page.wait_for_function("() => document.querySelector('.clip video').readyState >= 2", timeout=30_000)
    duration = page.evaluate("() => document.querySelector('.clip video').duration")
    page.evaluate("() => document.querySelector('.clip video').play()")  # decodes and plays (H.264)
    page.wait_for_function("() => document.querySelector('.clip video').currentTime > 0.5", timeout=30_000)
    page.evaluate("() => { const v = document.querySelector('.clip video'); v.pause(); v.currentTime = 3; }")
    page.wait_for_function("() => document.querySelector('.clip video').readyState >= 2")
    assert 4 < duration < 15  # 6094 is seen for about 5 s, plus 2 s padding each side
    assert "6094" in page.locator(".clip .body b").first.inner_text()
    run_id = re.search(r"run=([^&]+)", page.url).group(1)
    assert run_id
    card = page.locator(".clip").first
    meta = card.locator(".clip-video").inner_text()
    assert meta.startswith("race.mp4 · ") and web_data["video_id"] not in meta and run_id not in meta
    with page.expect_download() as download:
        card.get_by_text("Download").click()
    saved = download.value.path()
    assert download.value.suggested_filename.endswith(".mp4") and "6094" in download.value.suggested_filename
    assert Path(saved).read_bytes()[4:8] == b"ftyp"  # the clip's own bytes
    shot(page, "clips")
    # asked again: the clips exist, nothing is cut twice
    api = deployment.client()
    runs = api.call("GET", "/dags/video_clips/dagRuns?limit=1")["total_entries"]
    page.click("#request-clip")
    page.wait_for_selector('#clip-run[data-reused="clips"]')
    assert "exist already" in page.locator("#clip-run").inner_text()
    assert page.locator(".clip").count() >= 1
    assert api.call("GET", "/dags/video_clips/dagRuns?limit=1")["total_entries"] == runs


def test_a_clip_request_of_a_paused_video_clips_says_why_and_links_to_it(page, deployment, web_data):
    """Inside Airflow's UI (its sandboxed iframe): the reason, the DAG's link, and the run's link,
    which opens the run in the UI's own window."""
    api = deployment.client()
    api.call("PATCH", "/dags/video_clips", {"is_paused": True})
    run_id = None
    try:
        frame = embedded(page, deployment, "/reko/?view=clips&subject=257")
        note = frame.locator("#clips-dag")
        note.wait_for(timeout=60_000)
        assert "video_clips is paused: unpause it in Airflow" in note.inner_text()
        assert note.locator("a").get_attribute("href") == "/dags/video_clips"
        frame.locator("#request-clip").click()
        frame.locator('#clip-run[data-waiting="paused"]').wait_for()
        run = frame.locator("#clip-run")
        assert run.get_attribute("data-state") == "queued"
        assert "video_clips is paused: unpause it in Airflow" in run.inner_text()
        assert run.locator('a[href="/dags/video_clips"]').count() == 1
        # the UI's address follows the page's (run=... included)
        page.wait_for_url(re.compile(r".*/plugin/video-search/reko/\?view=clips.*run="))
        run_id = unquote(re.search(r"run=([^&]+)", page.url).group(1))
        shot(page, "clips-paused")
        link = run.get_by_text("View run in Airflow")
        href = link.get_attribute("href")
        assert href == f"/dags/video_clips/runs/{quote(run_id, safe='')}"
        link.click()
        page.wait_for_url(f"{deployment.url}{href}", timeout=30_000)
        assert page.locator('iframe[title="Videos"]').count() == 0  # the UI itself went there
    finally:
        if run_id:  # before unpausing, or the scheduler would start it
            api.call("DELETE", f"/dags/video_clips/dagRuns/{quote(run_id, safe='')}")
        api.call("PATCH", "/dags/video_clips", {"is_paused": False})
    assert not page.console_errors


def test_the_page_sits_in_the_airflow_navigation(page, deployment, web_data):
    page.goto(f"{deployment.url}/plugin/video-search")
    frame = page.frame_locator('iframe[title="Videos"]')
    frame.locator(".tabs").wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    shot(page, "airflow-nav")


def test_the_dag_tab_lists_the_videos_that_dag_analysed(page, deployment, web_data):
    page.goto(f"{deployment.url}/dags/video_analysis/plugin/reko-dag-videos")
    frame = page.frame_locator("iframe")
    card = frame.locator(f'.video-card[data-video-id="{web_data["video_id"]}"]')
    card.wait_for(timeout=60_000)
    assert "analysed by video_analysis" in frame.locator("#videos-status").inner_text()
    page.wait_for_timeout(500)
    shot(page, "airflow-dag-tab")


# --- inside Airflow's UI: links, the address, a link to copy -------------------------------------

NAV = "/plugin/video-search"


def embedded(page, deployment, inner: str):
    """The page in Airflow's nav view, opened at an inner address (as a shared link is)."""
    page.goto(f"{deployment.url}{NAV}{inner}")
    return page.frame_locator('iframe[title="Videos"]')


def test_last_run_opens_the_run_in_airflows_window_from_the_embedded_page(page, deployment, web_data):
    """Airflow's iframe sandbox refuses target=_top: the link must still take the UI there."""
    frame = embedded(page, deployment, "/reko/?view=videos")
    card = frame.locator(f'.video-card[data-video-id="{web_data["video_id"]}"]')
    card.wait_for(timeout=60_000)
    link = card.get_by_text("Last run")
    href = link.get_attribute("href")
    assert href.startswith("/dags/video_analysis/runs/") and link.get_attribute("target") is None
    link.click()
    page.wait_for_url(f"{deployment.url}{href}", timeout=30_000)
    assert page.locator('iframe[title="Videos"]').count() == 0
    page.get_by_text(unquote(href.rsplit("/", 1)[1])).first.wait_for(timeout=60_000)  # the run's page
    shot(page, "airflow-run-from-link")


def test_the_address_follows_the_search_and_a_copied_link_reopens_it(browser, deployment, web_data):
    from urllib.parse import parse_qs, urlsplit

    tab = new_tab(browser, deployment)
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.url)
    other = new_tab(browser, deployment)
    video_id = web_data["video_id"]
    try:
        frame = embedded(tab, deployment, "/reko/")
        frame.locator(f'#video-filter option[value="{video_id}"]').wait_for(state="attached", timeout=60_000)
        frame.locator("#q").fill("1042")
        frame.locator("#min-conf").fill("70")
        frame.locator("#video-filter").select_option(video_id)
        frame.locator("#search-form button[type=submit]").click()
        frame.locator(".video-result .frame").first.wait_for()
        want = {"view": ["search"], "text": ["1042"], "min": ["70"], "max": ["100"], "video": [video_id]}
        outer = urlsplit(tab.url)
        assert outer.path == f"{NAV}/reko/" and parse_qs(outer.query) == want, tab.url
        # the hits as a file, from inside Airflow's iframe (its sandbox allows downloads)
        with tab.expect_download() as download:
            frame.locator("#export-csv").click()
        assert download.value.suggested_filename == "reko-1042.csv"
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0].startswith("video_id,video,time_s,frame_index")
        assert len(lines) - 1 == frame.locator(".frame .box").count() > 0
        frame.locator("#copy-link").click()
        frame.locator("#share").wait_for()
        url = frame.locator("#share-url").input_value()
        assert url == tab.url
        assert tab.evaluate("() => navigator.clipboard.readText()") == url
        assert "Link copied" in frame.locator("#share-status").inner_text()
        shot(tab, "airflow-copy-link")
        # someone else opens it: Airflow's UI loads the page in that state
        other.goto(url)
        again = other.frame_locator('iframe[title="Videos"]')
        again.locator(".video-result .frame").first.wait_for(timeout=60_000)
        assert (
            again.locator("#q").input_value() == "1042" and again.locator("#min-conf").input_value() == "70"
        )
        again.locator(f'#video-filter option[value="{video_id}"]').wait_for(state="attached")
        assert again.locator("#video-filter").input_value() == video_id
        assert again.locator(".frame").count() == frame.locator(".frame").count() > 0
        # another tab of the page, then Back: the address follows both ways
        frame.locator('.tab[data-view="clips"]').click()
        tab.wait_for_url(re.compile(r".*/reko/\?view=clips&subject=1042"))
        tab.go_back()
        tab.wait_for_url(re.compile(r".*/reko/\?view=search&text=1042"))
        frame.locator("#view-search").wait_for()
    finally:
        tab.context.close()
        other.context.close()


def test_a_timeline_bar_or_a_frame_plays_the_video_from_that_moment(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&text=3318")
    bars = page.locator(".timeline .seg.pass")
    bars.first.wait_for()
    second = bars.nth(1)  # 3318's lap: its second pass starts about 27 s in
    start_s = float(re.search(r"(\d+):(\d\d)–", second.get_attribute("title")).group(2))
    second.click()
    video = page.locator(".video-result .player video")
    video.wait_for()
    page.wait_for_function(
        "() => { const v = document.querySelector('.player video');"
        " return v.readyState >= 2 && !v.seeking; }",
        timeout=30_000,
    )
    at = page.evaluate("() => document.querySelector('.player video').currentTime")
    assert start_s - 0.5 <= at <= start_s + 3, (at, start_s)
    assert video.get_attribute("src").endswith(f"/reko/video/{web_data['video_id']}")
    page.wait_for_function("() => !document.querySelector('.player video').paused", timeout=10_000)
    page.wait_for_timeout(300)
    shot(page, "search-player")
    # the moment is in the address: opened elsewhere, the same video is at the same time
    moment = re.search(r"play=([^&]+)&at=(\d+)", page.url)
    assert moment and unquote(moment.group(1)) == web_data["video_id"], page.url
    assert abs(int(moment.group(2)) / 1000 - start_s) < 1
    shared = page.context.new_page()
    shared.goto(page.url)
    shared.wait_for_function(
        "(s) => { const v = document.querySelector('.player video');"
        " return v && v.readyState >= 1 && !v.seeking && Math.abs(v.currentTime - s) < 2; }",
        arg=start_s,
        timeout=30_000,
    )
    shared.close()
    # a frame's play button: from the frame's time
    frame = page.locator(".frame").nth(2)
    caption = frame.locator("figcaption span").first.inner_text()
    frame_s = int(caption.split(" · ")[0].split(":")[1])
    frame.locator("button.play-here").click()
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('.player video'); return !v.seeking && v.readyState >= 2"
        f" && Math.abs(v.currentTime - {frame_s}) < 2; }}",
        timeout=30_000,
    )
    assert page.locator("#flipbook").is_hidden()  # the play button does not open the flip-book
    # from the flip-book: the video from the frame it shows
    page.get_by_role("button", name="Flip-book", exact=True).click()
    page.click("#fb-next")
    page.click("#fb-next")
    shown_s = int(page.locator("#fb-pos").inner_text().split(" · ")[1].split(":")[1])
    page.click("#fb-video")
    assert page.locator("#flipbook").is_hidden()
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('.player video'); return !v.seeking && v.readyState >= 2"
        f" && Math.abs(v.currentTime - {shown_s}) < 2; }}",
        timeout=30_000,
    )
    assert not page.console_errors


def test_frames_hold_their_place_while_their_pictures_load(page, deployment, web_data):
    """16:9 placeholders: the grid is laid out before any picture arrives, and keeps its place."""
    held = []
    page.route(
        "**/reko/media/**", lambda route: held.append(route)
    )  # the real responses, held back for a moment
    page.goto(f"{deployment.url}/reko/?view=search&text=3318")
    page.wait_for_selector(".frame")
    before = page.evaluate(
        "() => [...document.querySelectorAll('.frame .shot')].map(s => s.getBoundingClientRect())"
        ".map(r => [Math.round(r.top), r.width, r.height])"
    )
    assert before and all(abs(h - w * 9 / 16) < 2 for _, w, h in before), before
    for route in held:
        route.continue_()
    page.unroute("**/reko/media/**")  # and any picture asked for meanwhile goes through
    page.wait_for_function(
        "() => [...document.querySelectorAll('.frame img')].every(i => i.naturalWidth > 0)"
    )
    after = page.evaluate(
        "() => [...document.querySelectorAll('.frame .shot')].map(s => s.getBoundingClientRect())"
        ".map(r => [Math.round(r.top), r.width, r.height])"
    )
    assert [t for t, _, _ in after] == [t for t, _, _ in before]  # nothing moved when they came in


def test_frames_and_the_flip_book_work_from_the_keyboard(page, deployment, web_data):
    page.goto(f"{deployment.url}/reko/?view=search&text=908")
    page.wait_for_selector(".frame")
    page.focus(".frame >> nth=1")
    page.keyboard.press(" ")
    assert page.locator("#flipbook").is_visible()
    assert page.locator("#fb-pos").inner_text().startswith("2 / ")
    inside = "() => document.getElementById('flipbook').contains(document.activeElement)"
    for _ in range(12):  # Tab cycles inside the dialog, never out to the page behind it
        page.keyboard.press("Tab")
        assert page.evaluate(inside)
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside)
    page.keyboard.press("Escape")
    assert page.locator("#flipbook").is_hidden()
    assert page.evaluate("() => document.activeElement === document.querySelectorAll('.frame')[1]")
    page.keyboard.press("Enter")
    assert page.locator("#flipbook").is_visible()
    page.keyboard.press("Escape")


GLYPHS = re.compile("[▶⏸✕‹›↗⏵⏯]")


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1440, 900)])
def test_the_page_fits_phone_and_desktop_screens(browser, deployment, web_data, width, height):
    """No sideways scroll, every tab and flip-book control in view, icons drawn (not font glyphs),
    on the bare page and inside Airflow's UI, whose nav label for the page is not cut."""
    tab = new_tab(browser, deployment, width, height)
    size = f"{width}x{height}"
    no_sideways = "() => [document.scrollingElement.scrollWidth, innerWidth]"
    try:
        for view, inner, ready in (
            ("search", "/reko/?view=search&text=3318", ".frame img"),
            ("videos", "/reko/?view=videos", ".video-card img.thumb"),
            ("clips", "/reko/?view=clips&subject=web%20test", ".clip video"),
        ):
            tab.goto(deployment.url + inner)
            tab.wait_for_selector(ready)
            tab.wait_for_function(
                "() => [...document.querySelectorAll('img')].every(i => i.complete)", timeout=30_000
            )
            scroll, inner_width = tab.evaluate(no_sideways)
            assert scroll <= inner_width, (view, size, scroll, inner_width)
            for name in ("search", "videos", "clips"):  # each tab in view and on top where it is drawn
                hit = tab.evaluate(
                    """(name) => { const t = document.querySelector(`.tab[data-view="${name}"]`);
                        const r = t.getBoundingClientRect();
                        const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                        return [r.left >= 0 && r.right <= innerWidth, t.contains(at)]; }""",
                    name,
                )
                assert hit == [True, True], (view, name, size)
            shot(tab, f"{view}-{size}")
        tab.goto(f"{deployment.url}/reko/?view=search&text=908")
        tab.get_by_role("button", name="Flip-book", exact=True).click()
        tab.wait_for_function("() => document.querySelector('#fb-stage img').complete")
        clipped = tab.evaluate(
            """() => { const box = document.querySelector('.flipbook').getBoundingClientRect();
                const items = [...document.querySelectorAll('.flipbook button, .flipbook select, #fb-scrub')];
                const rs = items.map(e => [e.id || e.className, e.getBoundingClientRect()]);
                const out = rs.filter(([, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5
                    || r.right > innerWidth || r.bottom > innerHeight || r.width < 24).map(([n]) => n);
                const over = [];
                for (let i = 0; i < rs.length; i++) for (let j = i + 1; j < rs.length; j++) {
                    const [a, b] = [rs[i][1], rs[j][1]];
                    if (a.left < b.right - 0.5 && b.left < a.right - 0.5
                        && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
                        over.push(rs[i][0] + "/" + rs[j][0]);
                }
                return [out, over]; }"""
        )
        assert clipped == [[], []], (size, clipped)
        buttons = tab.evaluate(
            "() => [...document.querySelectorAll('button:not(.seg)')]"  # timeline bars draw themselves
            ".map(b => [b.textContent, !!b.querySelector('svg')])"
        )
        assert not [t for t, _ in buttons if GLYPHS.search(t)], buttons
        assert all(has_svg for t, has_svg in buttons if not t.strip()), (
            buttons
        )  # an icon-only button draws one
        assert tab.locator("#fb-play svg").count() == 1 and tab.locator("#fb-close svg").count() == 1
        shot(tab, f"flipbook-{size}")
        # inside Airflow's UI
        tab.goto(f"{deployment.url}{NAV}/reko/?view=search&text=3318")
        frame = tab.frame_locator('iframe[title="Videos"]')
        frame.locator(".frame img").first.wait_for(timeout=60_000)
        scroll, inner_width = frame.locator("html").evaluate(no_sideways.replace("()", "(_)"))
        assert scroll <= inner_width, ("in Airflow", size, scroll, inner_width)
        for name in ("search", "videos", "clips"):  # the whole tab inside the (narrower) frame
            left, right, width = frame.locator(f'.tab[data-view="{name}"]').evaluate(
                "(t) => { const r = t.getBoundingClientRect(); return [r.left, r.right, innerWidth]; }"
            )
            assert left >= 0 and right <= width, ("in Airflow", name, size, left, right, width)
        frame.locator('.tab[data-view="clips"]').click()
        frame.locator("#view-clips").wait_for()
        cut = tab.evaluate(
            """() => [...document.querySelectorAll('body *')].filter(e => !e.children.length
                && e.textContent.trim() === 'Videos' && e.getClientRects().length)
                .map(e => e.scrollWidth > e.clientWidth + 1)"""
        )
        assert cut and not any(cut), (size, cut)  # the nav item's label is there, whole
        tab.wait_for_timeout(300)
        shot(tab, f"airflow-nav-{size}")
    finally:
        tab.context.close()


# --- find a person by photo ----------------------------------------------------------------------

FACES_SEED = 3
PHOTOS = Path(__file__).parents[1] / "include" / "sample" / "faces"


@pytest.fixture(scope="module")
def faces_in_page(web_data, os_client, tmp_path_factory):
    """A composed video of real faces (make_faces.py) analysed for faces into this module's
    indices, and a runner pass (bib 4711, with a roster name) linked to the person's first track."""
    import sys

    sys.path.insert(0, str(PHOTOS.parent))
    import make_faces

    from reko.faces.search import find_person
    from reko.index.client import IndexNames
    from reko.pipeline import RunConfig, analyse_video, probe_video

    root = tmp_path_factory.mktemp("page-faces")
    video, truth_path = make_faces.make(FACES_SEED, root, 4.8, 0.4)
    cfg = RunConfig.from_params(
        {
            "video_uri": video.as_uri(),
            "backend": "local",
            "frame_interval_s": 0.4,
            "analyses": ["faces"],
            "min_confidence": 50,
        }
    )
    job = probe_video(cfg, os.environ["REKO_WORK_URI"])
    names = IndexNames.current()
    analyse_video(os_client, names, job, dag_id="video_analysis", run_id="page-faces")
    truth = json.loads(truth_path.read_text())
    photo = PHOTOS / f"{truth['query_photo']}.jpg"
    assert truth["query_photo"] not in truth["target_photos_in_video"]  # not a frame of the video
    found = find_person(os_client, names, photo.read_bytes())
    frames = found["videos"][0]["frames"]
    track_id = os_client.get(index=names.faces, id=frames[0]["faces"][0]["face"])["_source"]["track_id"]
    os_client.index(
        index=names.passes,
        id=f"{job.store.video_id}:pass:4711:0000000",
        body={
            "video_id": job.store.video_id,
            "number": "4711",
            "name": "Sam Lee",
            "start_ms": frames[0]["timestamp_ms"],
            "end_ms": frames[-1]["timestamp_ms"],
            "frame_count": len(frames),
            "face_track_id": track_id,
        },
        params={"refresh": "true"},
    )
    return {"video_id": job.store.video_id, "photo": photo, "frames": len(frames), "root": root}


def test_a_photo_finds_the_person_with_boxes_passes_a_timeline_and_a_clip(browser, deployment, faces_in_page):
    from PIL import Image

    video_id = faces_in_page["video_id"]
    tab = new_tab(browser, deployment)
    try:
        tab.goto(f"{deployment.url}/reko/?view=search")
        tab.set_input_files("#face-photo", str(faces_in_page["photo"]))
        card = tab.locator(f'.person-result[data-video-id="{video_id}"]')
        card.wait_for(timeout=60_000)
        tab.wait_for_function(
            "() => [...document.querySelectorAll('.person-result img')].every(i => i.complete)"
        )
        assert card.locator(".frame").count() == faces_in_page["frames"]
        assert card.locator(".frame .box").count() >= faces_in_page["frames"]  # a face box on every frame
        assert re.fullmatch(r"\d+% match", card.locator(".box .label").first.inner_text())
        assert "Bib 4711 · Sam Lee" in card.locator(".person-pass").inner_text()
        assert (
            card.locator(".timeline .seg.face").count() >= 1
            and card.locator(".timeline .seg.pass").count() == 1
        )
        assert "The person is seen in" in tab.locator("#search-status").inner_text()
        assert not tab.locator("#face-preview").is_hidden()
        # the photo is in no storage and no address
        stored = tab.evaluate("() => JSON.stringify([localStorage, sessionStorage, location.href])")
        assert "data:" not in stored and "jpg" not in stored and "person=photo" in stored
        shot(tab, "person")

        # the flip-book shows the person's frames, boxes drawn
        card.get_by_role("button", name="Flip-book", exact=True).click()
        tab.wait_for_function("() => document.querySelector('#fb-stage img').complete")
        assert tab.locator("#fb-stage .box").count() >= 1
        tab.keyboard.press("Escape")

        # what goes wrong gets its own message
        grey = faces_in_page["root"] / "wall.png"
        Image.new("RGB", (400, 300), (90, 90, 90)).save(grey, "PNG")
        for upload, message in (
            (str(grey), "No face found in the photo"),
            (
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"},
                "is not a JPEG or PNG photo",
            ),
            (
                {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (15 * 1024 * 1024 + 1)},
                "The photo is too large",
            ),
        ):
            tab.set_input_files("#face-photo", upload)
            tab.wait_for_function(
                "(m) => document.querySelector('#search-status').textContent.includes(m)", arg=message
            )
            assert "error" in (tab.locator("#search-status").get_attribute("class") or "")
        tab.set_input_files("#face-photo", str(faces_in_page["photo"]))  # the same photo again
        card.wait_for()
        tab.fill("#face-threshold", "99.9")  # the photo is held in memory: a stricter search of it
        tab.click("#face-search")
        tab.locator(".person-none").wait_for()
        assert "No match" in tab.locator(".person-none").inner_text()

        # the clip request for the person: the Clips view's flow, named by a face id, cut by video_clips
        tab.fill("#face-threshold", "83")
        tab.click("#face-search")
        card.wait_for()
        card.locator(".person-clip").click()
        tab.wait_for_selector('#clip-run[data-state="success"]', timeout=240_000)
        assert "face:" in unquote(tab.url) and "ready" in tab.locator("#clip-run").inner_text()
        tab.locator(".clip video").first.wait_for()
        assert tab.locator(".clip .body b").first.inner_text().startswith("The person · ")
        shot(tab, "person-clips")
    finally:
        tab.context.close()

    # a phone, inside Airflow's iframe: nothing wider than the screen
    tab = new_tab(browser, deployment, 390, 844)
    try:
        frame = embedded(tab, deployment, "/reko/?view=search")
        frame.locator("#results .empty").wait_for(timeout=60_000)  # the page's script is wired up
        frame.locator("#face-photo").set_input_files(str(faces_in_page["photo"]))
        frame.locator(f'.person-result[data-video-id="{video_id}"] .frame img').first.wait_for(timeout=60_000)
        tab.wait_for_timeout(300)
        shot(tab, "person-390x844")
        frame.locator("#view-search").screenshot(path=str(ARTIFACTS / "person-in-airflow-390.png"))
        wide = frame.locator("html").evaluate(
            """(_) => [document.scrollingElement.scrollWidth, innerWidth,
                [...document.querySelectorAll('#view-search *')].filter(e => e.getClientRects().length
                    && e.getBoundingClientRect().right > innerWidth + 0.5).map(e => e.id || e.className)]"""
        )
        assert wide[0] <= wide[1], wide
        assert frame.locator(".person-pass").count() == 1
    finally:
        tab.context.close()
