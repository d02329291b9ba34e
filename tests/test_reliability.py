"""Faults in the middle of `video_analysis` neither lose nor duplicate anything (dag.test level).

Each test runs a 4-frame clip of the sample under its own URI with a fault injected, lets the
pipeline (and Airflow's own retry, or a re-run once the fault is fixed) recover, and asserts that
the detections, segments and video document equal those of a clean run of the same clip, field
by field (`tests.support.same_index`). Faults: OpenSearch dropping connections (the first `_bulk`,
or every request for a few seconds), `_bulk` answering 429 (whole requests for a few seconds, or
single items), and bad frames (analysis raises, bytes that are not an image, an image over the
local analyser's size limit).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO
from tests.support.loopback_opensearch import FaultyProxy
from tests.support.same_index import (
    IndexState,
    assert_same_index,
    doc_versions,
    index_differences,
    index_state,
)
from tests.support.short_videos import copy_under, cut_of

CLIP_START_S, CLIP_FRAMES = 4, 4  # bibs 1042 and 257 are in view
BATCH = 2  # two mapped batches: frames 0-1 and 2-3
BAD_FRAME = 3
RETRY_S = 3  # retry_delay of the copy of the DAG these tests run (the real one waits 15 s)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 4-second cut of the sample (re-encoded, so it starts on a key frame)."""
    return cut_of(SAMPLE_VIDEO, tmp_path_factory.mktemp("clip") / "clip.mp4", CLIP_START_S, CLIP_FRAMES)


@pytest.fixture(scope="module")
def module_env(tmp_path_factory) -> Iterator[Path]:
    """Every run of this module uses the fault-injecting analyser (it behaves like the real one)."""
    root = tmp_path_factory.mktemp("reliability")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REKO_LOCAL_TEXT_ANALYSER", "tests.support.faulty:FaultyTextAnalyser")
        yield root


@pytest.fixture(scope="module")
def dag(analysis_dag, module_env):
    """A fresh copy of `video_analysis` (dag.test() writes run conf into Params), retrying sooner."""
    from airflow.dag_processing.dagbag import DagBag

    copy = DagBag(dag_folder=analysis_dag.fileloc).dags["video_analysis"]
    for task in copy.tasks:
        if task.task_id != "analyse_frames":
            task.retry_delay = timedelta(seconds=RETRY_S)
    return copy


@pytest.fixture
def faults(module_env, tmp_path, monkeypatch) -> SimpleNamespace:
    calls, fail = tmp_path / "calls.log", tmp_path / "fail.json"
    fail.write_text("[]")
    monkeypatch.setenv("REKO_TEST_CALLS_LOG", str(calls))
    monkeypatch.setenv("REKO_TEST_FAIL_HASHES", str(fail))
    return SimpleNamespace(calls=calls, fail=fail, calls_made=lambda: calls.read_text().split())


def run(dag, uri: str, **conf):
    return dag.test(run_conf={"video_uri": uri, "batch_size": BATCH, **conf})


def tries(dag_run) -> dict[tuple[str, int], tuple[str, int]]:
    """(task_id, map_index) -> (state, try_number)."""
    return {(ti.task_id, ti.map_index): (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def clean(dag, clip, module_env, os_client) -> IndexState:
    """The reference: the clip analysed with no fault."""
    from airflow.utils.state import DagRunState

    from reko.index.client import IndexNames

    uri = copy_under(clip, module_env, "clean").as_uri()
    assert run(dag, uri).state == DagRunState.SUCCESS
    state = index_state(os_client, IndexNames.current(), uri)
    assert len(state.docs["detections"]) > 5 and state.docs["segments"] and len(state.docs["videos"]) == 1
    assert {s["value_norm"] for s in state.docs["segments"].values()} >= {"1042", "257"}
    return state


@pytest.fixture
def proxy(opensearch_url, monkeypatch) -> Iterator[FaultyProxy]:
    """The OpenSearch connection of the runs points at a fault-injecting proxy in front of the node."""
    from reko.localdev.airflow_services import opensearch_connection

    with FaultyProxy(opensearch_url) as p:
        monkeypatch.setenv("AIRFLOW_CONN_OPENSEARCH_DEFAULT", opensearch_connection(p.url))
        yield p


# -- the comparison itself -------------------------------------------------------------------------


def test_the_comparison_names_every_id_and_field_that_differs():
    def state(uri: str, detections: dict, status: str = "complete") -> IndexState:
        vid = video_id_for(uri)
        docs = {f"{vid}:{k}": {"video_id": vid, **v} for k, v in detections.items()}
        video = {"video_id": vid, "source_uri": uri, "status": status, "run_id": uri, "processed_at": uri}
        return IndexState(uri, vid, {"detections": docs, "segments": {}, "videos": {vid: video}})

    a = state("file:///a/clip.mp4", {"1": {"frame_index": 1, "value": "1042"}, "2": {"frame_index": 2}})
    same = state("file:///b/clip.mp4", {"1": {"frame_index": 1, "value": "1042"}, "2": {"frame_index": 2}})
    assert index_differences(a, same, kinds=("detections", "videos")) == []  # run_id, processed_at ignored

    misread = {"frame_index": 1, "value": "1O42"}
    b = state("file:///b/clip.mp4", {"1": misread, "3": {"frame_index": 3}}, "partial")
    lines = index_differences(a, b)
    assert "detections: 1 ids only in the clean run: ['{video}:2']" in lines
    assert "detections: 1 ids only in the faulted run: ['{video}:3']" in lines
    assert "detections {video}:1 field 'value': clean '1042' != faulted '1O42'" in lines
    assert "videos {video} field 'status': clean 'complete' != faulted 'partial'" in lines
    assert "segments: the clean run has no documents (nothing would be compared)" in lines
    c = state("file:///c/clip.mp4", {"1": misread, "2": {"frame_index": 2}})
    assert index_differences(a, c, kinds=("detections",)) != []
    assert index_differences(a, c, kinds=("detections",), skip_frames=frozenset({1})) == []
    with pytest.raises(AssertionError, match="field 'value': clean '1042' != faulted '1O42'"):
        assert_same_index(a, b)


# -- OpenSearch down, then up ---------------------------------------------------------------------


def test_first_bulk_lost_the_loader_resends_it_and_the_index_equals_a_clean_run(
    dag, clip, clean, module_env, faults, proxy, os_client, index_names
):
    from airflow.utils.state import DagRunState

    # the client re-sends a dropped request 3 times by itself: drop all four attempts, so the
    # loader sees the connection error and backs off before sending the batch again
    proxy.faults.drop_requests = 4
    uri = copy_under(clip, module_env, "bulk-dropped").as_uri()
    dag_run = run(dag, uri)

    assert dag_run.state == DagRunState.SUCCESS
    assert [f for f, _, _ in proxy.injected] == ["drop"] * 4
    bodies = [r.body for r in proxy.bulk_requests]
    assert bodies[:5] == [bodies[0]] * 5  # the same detections, five times; the fifth got through
    assert tries(dag_run)[("load_detections", -1)] == ("success", 1)  # recovered inside the task
    assert_same_index(clean, index_state(os_client, index_names, uri))
    assert len(faults.calls_made()) == CLIP_FRAMES


def test_opensearch_down_for_seconds_airflow_retries_and_the_index_equals_a_clean_run(
    dag, clip, clean, module_env, faults, proxy, os_client, index_names
):
    from airflow.utils.state import DagRunState

    proxy.faults.down_for_s = RETRY_S  # from the run's first request: its retry comes after it
    uri = copy_under(clip, module_env, "node-down").as_uri()
    dag_run = run(dag, uri)

    assert dag_run.state == DagRunState.SUCCESS
    assert proxy.injected and {f for f, _, _ in proxy.injected} == {"down"}
    # the run's first request (probe taking the video's lease) was lost with the client's re-sends
    assert len(proxy.injected) == 4 and proxy.injected[0][2].endswith("-leases")
    assert tries(dag_run)[("probe", -1)] == ("success", 2)
    assert_same_index(clean, index_state(os_client, index_names, uri))


# -- _bulk answering 429 --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["whole-requests", "items"])
def test_bulk_429s_are_waited_out_and_the_index_equals_a_clean_run_each_document_written_once(
    mode, dag, clip, clean, module_env, faults, proxy, os_client, index_names
):
    from airflow.utils.state import DagRunState

    uri = copy_under(clip, module_env, f"bulk-429-{mode}").as_uri()
    vid = video_id_for(uri)
    if mode == "whole-requests":
        proxy.faults.reject_for_s = 3.0
    else:  # a full write queue rejects single documents: some detections and a segment
        detections = sorted(clean.normalised("detections"))
        chosen = [*detections[:: max(1, len(detections) // 5)], sorted(clean.normalised("segments"))[0]]
        proxy.faults.reject_items = {i.replace("{video}", vid) for i in chosen}
    dag_run = run(dag, uri)

    assert dag_run.state == DagRunState.SUCCESS
    rejected = [p for f, _, p in proxy.injected if f in ("429", "item-429")]
    if mode == "whole-requests":
        assert len(rejected) >= 2 and all(p.split("?")[0] == "/_bulk" for p in rejected)
    else:
        assert sorted(rejected) == sorted(i.replace("{video}", vid) for i in chosen)
        assert not proxy.faults.reject_items  # every chosen id was rejected once, then re-sent
    assert_same_index(clean, index_state(os_client, index_names, uri))
    for index in (index_names.detections, index_names.segments):  # indexed once: never a second write
        assert set(doc_versions(os_client, index, vid).values()) == {1}


# -- bad frames -----------------------------------------------------------------------------------


def _oversize(original: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(original)) as image:
        bigger = image.resize((image.width * 3 // 2, image.height * 3 // 2))
    out = io.BytesIO()
    bigger.save(out, "JPEG", quality=90)
    return out.getvalue()


FRAME_FAULTS = {
    # name: (what to do to the frame, the reason recorded for it)
    "analysis-raises": ("fail-hash", "InjectedFault: injected failure for frame"),
    "not-an-image": ("garbage", "ValueError: image is not a JPEG or PNG"),
    "over-size-limit": ("oversize", "ValueError: image too large: 1920x1080 px (2,073,600 pixels) is over"),
}


@pytest.mark.parametrize("case", list(FRAME_FAULTS))
def test_a_bad_frame_fails_alone_with_its_reason_and_after_the_fix_the_index_equals_a_clean_run(
    case, dag, clip, clean, module_env, faults, monkeypatch, os_client, index_names
):
    from airflow.utils.state import DagRunState

    from reko.config import work_uri
    from reko.pipeline import RunConfig, extract, probe_video
    from reko.storage import local_path

    action, reason = FRAME_FAULTS[case]
    uri = copy_under(clip, module_env, f"frame-{case}").as_uri()
    # cut the frames first (the run reuses them), then spoil one of them
    job = probe_video(RunConfig.from_params({**dag.params.dump(), "video_uri": uri}), work_uri())
    extract(job.cfg, job.store, job.info)
    frame = local_path(job.store.frame(BAD_FRAME))
    assert frame is not None
    original = frame.read_bytes()
    if action == "fail-hash":
        faults.fail.write_text(json.dumps([hashlib.sha1(original).hexdigest()]))
    elif action == "garbage":
        frame.write_bytes(b"\x00\x13garbage, not a JPEG\n" * 100)
    else:
        monkeypatch.setenv("REKO_TEST_MAX_PIXELS", str(1280 * 720))  # the clip's frames are 1280x720
        frame.write_bytes(_oversize(original))

    dag_run = run(dag, uri)
    assert dag_run.state == DagRunState.FAILED
    states = tries(dag_run)
    # the batch holding the frame failed at once (retrying cannot help); the rest ran and loaded
    assert states[("analyse_frames", BAD_FRAME // BATCH)] == ("failed", 1)
    assert states[("analyse_frames", 1 - BAD_FRAME // BATCH)] == ("success", 1)
    for task in ("load_detections", "build_segments", "write_video_document"):
        assert states[(task, -1)] == ("success", 1)
    assert states[("fail_run_on_failed_frames", -1)][0] == "failed"
    partial = index_state(os_client, index_names, uri)
    (doc,) = partial.docs["videos"].values()
    assert doc["status"] == "partial" and doc["counts"]["failed_frames"] == 1
    (failed,) = doc["failed_frames"]
    assert (failed["frame_index"], failed["kind"]) == (BAD_FRAME, "text")
    assert failed["reason"].startswith(reason), failed["reason"]
    assert BAD_FRAME in clean.frames() and BAD_FRAME not in partial.frames()
    # every other frame's detections are the clean run's
    assert_same_index(clean, partial, kinds=("detections",), skip_frames=frozenset({BAD_FRAME}))
    assert len(faults.calls_made()) == CLIP_FRAMES

    # the fault is fixed: a re-run analyses that frame only, and the index is the clean run's
    faults.fail.write_text("[]")
    frame.write_bytes(original)
    monkeypatch.delenv("REKO_TEST_MAX_PIXELS", raising=False)
    faults.calls.write_text("")
    assert run(dag, uri).state == DagRunState.SUCCESS
    assert faults.calls_made() == [hashlib.sha1(original).hexdigest()]
    assert_same_index(clean, index_state(os_client, index_names, uri))


# -- the local analyser's size limit --------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but holds almost no data (cheap to make)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + data + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, expected
@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((10_000, 10_000), "image too large: 10000x10000 px (100,000,000 pixels) is over the local"),
        ((20_000, 20_000), "image too large: Image size (400000000 pixels) exceeds limit"),
    ],
)
def test_the_local_analyser_refuses_frames_over_its_pixel_limit_before_decoding(size, message):
    from PIL import Image

    from reko.analysis.local_text import MAX_PIXELS, LocalTextAnalyser

    assert MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb threshold
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LocalTextAnalyser().detect_text(_png_header(*size))
    with pytest.raises(ValueError, match="max_pixels must be at least 1"):
        LocalTextAnalyser(max_pixels=0)
