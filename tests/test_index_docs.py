"""Detection documents, deterministic ids, segment merging and batch planning (no services)."""

from __future__ import annotations

import pytest

from reko.index.client import INDEX_KINDS, index_template
from reko.index.docs import detection_docs, detection_id, normalise
from reko.index.segments import Sighting, build_segments
from reko.pipeline import MAX_BATCHES, auto_batch_size, plan_batches

RESPONSE = {
    "TextDetections": [
        {
            "DetectedText": "BIB 1042",
            "Type": "LINE",
            "Id": 0,
            "Confidence": 91.5,
            "Geometry": {"BoundingBox": {"Left": 0.1, "Top": 0.2, "Width": 0.3, "Height": 0.05}},
        },
        {
            "DetectedText": "BIB",
            "Type": "WORD",
            "Id": 1,
            "ParentId": 0,
            "Confidence": 40.0,
            "Geometry": {"BoundingBox": {"Left": 0.1, "Top": 0.2, "Width": 0.1, "Height": 0.05}},
        },
        {
            "DetectedText": "1042",
            "Type": "WORD",
            "Id": 2,
            "ParentId": 0,
            "Confidence": 95.25,
            "Geometry": {"BoundingBox": {"Left": 0.22, "Top": 0.2, "Width": 0.18, "Height": 0.05}},
        },
    ]
}


def docs(min_confidence: float = 50.0):
    return detection_docs(
        video_id="v1",
        frame_index=3,
        timestamp_ms=3000,
        frame_uri="file:///f/v.0000003.jpg",
        kind="text",
        response=RESPONSE,
        backend="local",
        model="m1",
        min_confidence=min_confidence,
    )


def test_detection_docs_filter_and_number_deterministically():
    kept = docs()
    assert [doc_id for doc_id, _ in kept] == ["v1:0000003:text:000", "v1:0000003:text:001"]
    line, word = (doc for _, doc in kept)
    assert line["value"] == "BIB 1042" and line["text_type"] == "LINE" and "parent_id" not in line
    assert word["value_norm"] == "1042" and word["parent_id"] == 0 and word["ordinal"] == 1
    assert word["bbox"] == {"left": 0.22, "top": 0.2, "width": 0.18, "height": 0.05}
    assert docs() == kept
    assert len(docs(min_confidence=0)) == 3
    assert detection_id("v", 12, "faces", 2) == "v:0000012:faces:002"


def test_normalise():
    assert normalise("  bib\t1042 ") == "BIB 1042"
    assert normalise("ｂｉｂ１０４２") == "BIB1042"
    assert normalise("서울 마라톤") == "서울 마라톤"


def sightings(value: str, frames: list[int], interval_ms: int = 1000):
    return [Sighting(value, value, f, f * interval_ms, 80.0 + f % 7, f"uri{f}") for f in frames]


def test_segments_merge_within_1_2_intervals_and_split_on_a_missed_frame():
    rows = sightings("1042", [2, 3, 4, 6, 7]) + sightings("257", [0, 1])
    rows.sort(key=lambda s: (s.value_norm, s.frame_index))
    segs = [
        doc for _, doc in build_segments(rows, video_id="v", kind="text", backend="local", interval_ms=1000)
    ]
    assert [(d["value"], d["start_ms"], d["end_ms"], d["frame_count"]) for d in segs] == [
        ("1042", 2000, 4000, 3),
        ("1042", 6000, 7000, 2),
        ("257", 0, 1000, 2),
    ]
    best = segs[0]
    assert best["best_confidence"] == 84.0 and best["thumbnail_frame_index"] == 4


def test_segments_count_a_value_seen_twice_in_one_frame_once():
    rows = sightings("77", [1, 1, 2])
    ((_, seg),) = build_segments(rows, video_id="v", kind="text", backend="local", interval_ms=1000)
    assert seg["frame_count"] == 2


@pytest.mark.parametrize("frames", [1, 30, 600, 21600, 6 * 3600 * 4])
def test_batches_cover_every_frame_once_and_stay_under_the_map_limit(frames):
    batches = plan_batches(frames, None)
    assert len(batches) <= MAX_BATCHES
    covered = [i for b in batches for i in range(b["start"], b["end"])]
    assert covered == list(range(frames))
    assert auto_batch_size(frames) <= max(100, -(-frames // MAX_BATCHES))
    assert len(batches) == 1 or auto_batch_size(frames) >= 25


def test_a_batch_size_that_floods_the_scheduler_is_refused():
    with pytest.raises(ValueError, match="raise batch_size"):
        plan_batches(21600, 1)


def test_templates_parse_and_bind_the_prefix():
    for kind in INDEX_KINDS:
        template = index_template(kind, "p")
        assert template["index_patterns"] == [f"p-{kind}*"]
        assert template["template"]["mappings"]["dynamic"] == "strict"


def test_totals_keep_every_runs_calls_and_cost_and_count_a_retried_run_once():
    from reko.pipeline import cumulative_totals

    first = {
        "api_calls": {"made": 38, "skipped": 0, "estimated_cost_usd": 0.038},
        "mediaconvert": {"jobs": 1, "proxy_minutes": 0.6333, "estimated_cost_usd": 0.00475},
        "run_cost_usd": 0.04275,
    }
    first["totals"] = cumulative_totals(None, first, "run-1")
    first["run_id"] = "run-1"
    assert first["totals"] == {
        "runs": 1,
        "api_calls_made": 38,
        "api_calls_skipped": 0,
        "mediaconvert_jobs": 1,
        "mediaconvert_proxy_minutes": 0.6333,
        "estimated_cost_usd": 0.04275,
    }
    cached = {
        "api_calls": {"made": 0, "skipped": 38, "estimated_cost_usd": 0.0},
        "mediaconvert": {"jobs": 0, "proxy_minutes": 0.0, "estimated_cost_usd": 0.0},
        "run_cost_usd": 0.0,
    }
    second = cumulative_totals(first, cached, "run-2")
    assert second == {
        "runs": 2,
        "api_calls_made": 38,
        "api_calls_skipped": 38,
        "mediaconvert_jobs": 1,
        "mediaconvert_proxy_minutes": 0.6333,
        "estimated_cost_usd": 0.04275,
    }
    # write_video_document retried within run-2: its own earlier document is replaced, not added
    again = cumulative_totals({**cached, "totals": second, "run_id": "run-2"}, cached, "run-2")
    assert again == second
    # a document from before totals existed counts as the one run that wrote it
    legacy = {"api_calls": {"made": 5, "skipped": 1, "estimated_cost_usd": 0.005}, "run_id": "old"}
    assert cumulative_totals(legacy, cached, "run-3")["api_calls_made"] == 5
    assert cumulative_totals(legacy, cached, "run-3")["runs"] == 2
