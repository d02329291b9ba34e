"""`video_analysis` end to end with dag.test(): real ffmpeg, real OCR, a real OpenSearch node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_VIDEO, snapshot

pytestmark = pytest.mark.slow
INTERVAL_MS = 1000
CALLS = {
    "made": 0,
    "skipped": 0,
    "skipped_cached": 0,
    "skipped_duplicates": 0,
    "price_per_1000": 0.0,
    "estimated_cost_usd": 0.0,
}


def run(dag, **conf):
    from airflow.utils.state import DagRunState

    dag_run = dag.test(run_conf={"video_uri": SAMPLE_VIDEO.as_uri(), **conf})
    return dag_run, dag_run.state == DagRunState.SUCCESS


@pytest.fixture
def first_run(clean_sample) -> dict:
    """The session's clean analysis of the sample (shared with the modules that compare to it)."""
    return clean_sample


def test_every_bib_is_found_with_segments_at_the_true_times(first_run, sample_truth):
    segments = [s for s in first_run["segments"].values() if s["kind"] == "text"]
    report = {}
    for bib in sample_truth["bibs"]:
        found = sorted((s["start_ms"], s["end_ms"]) for s in segments if s["value_norm"] == bib["text"])
        truth = [(round(t["start_s"] * 1000), round(t["end_s"] * 1000)) for t in bib["segments"]]
        report[bib["text"]] = {"found": found, "truth": truth}
        assert len(found) == len(truth), report[bib["text"]]
        for (start, end), (t_start, t_end) in zip(found, truth, strict=True):
            assert abs(start - t_start) <= INTERVAL_MS, (bib["text"], start, t_start)
            assert abs(end - t_end) <= INTERVAL_MS, (bib["text"], end, t_end)
    print(json.dumps(report))


def test_every_runner_of_the_clean_sample_is_one_whole_pass(first_run, sample_truth):
    from reko.runners.truth import score

    result = score(sample_truth, first_run["passes"].values(), interval_ms=INTERVAL_MS)
    print(json.dumps(result.summary()))
    assert result.passes == 8 and result.whole == 8, result.rows
    assert result.false_passes == [] and result.frame_recall == 1.0
    assert first_run["video"]["counts"]["passes"] == 8
    assert not any(p["number"] == "2026" for p in first_run["passes"].values())  # the banner's year


def test_document_counts_match_what_the_analyser_returned(first_run):
    video = first_run["video"]
    work = Path(video["frames_uri"].removeprefix("file://")).parent / "results" / "local" / "text"
    expected = 0
    for result_file in sorted(work.glob("*.json")):
        response = json.loads(result_file.read_text())["response"]
        expected += sum(
            1
            for d in response["TextDetections"]
            if d["Confidence"] >= video["min_confidence"] and d["DetectedText"].strip()
        )
    assert len(list(work.glob("*.json"))) == video["frame_count"] == 38
    assert len(first_run["detections"]) == expected == video["counts"]["detections"]
    assert len(first_run["segments"]) == video["counts"]["segments"]
    assert video["status"] == "complete" and video["failed_frames"] == []
    assert video["api_calls"] == CALLS | {"made": 38}  # local models cost nothing
    assert video["duration_ms"] == 38000 and video["fps"] == 25


def test_a_second_run_leaves_the_index_the_same(analysis_dag, os_client, first_run):
    from reko.index.client import IndexNames

    names = IndexNames.current()
    dag_run, ok = run(analysis_dag)
    assert ok
    video_id = first_run["video_id"]
    assert snapshot(os_client, names.detections, video_id) == first_run["detections"]
    assert snapshot(os_client, names.segments, video_id) == first_run["segments"]
    assert snapshot(os_client, names.passes, video_id) == first_run["passes"]
    video = os_client.get(index=names.videos, id=video_id)["_source"]
    assert video["api_calls"] == CALLS | {"skipped": 38, "skipped_cached": 38}
    assert video["totals"]["runs"] == first_run["video"]["totals"]["runs"] + 1
    assert video["totals"]["api_calls_made"] == first_run["video"]["totals"]["api_calls_made"] >= 38
    volatile = {"processed_at", "run_id", "api_calls", "totals"}
    assert {k: v for k, v in video.items() if k not in volatile} == {
        k: v for k, v in first_run["video"].items() if k not in volatile
    }


def test_the_run_announces_the_video_as_an_asset_event(first_run):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "reko_video_analysed")
            .order_by(AssetEvent.id.desc())
        ).first()
        extra = dict(event.extra)
    video = first_run["video"]
    assert extra["video_id"] == first_run["video_id"]
    assert extra["status"] == "complete" and extra["frame_count"] == video["frame_count"]
    assert extra["detections"] == video["counts"]["detections"]
