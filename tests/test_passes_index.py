"""Passes from the index: Rekognition-shaped WORDs of either backend go through the same tracker.

DetectText responses (the shape Rekognition returns, as the local reader mimics) for a runner
crossing the frame are turned into detection documents, indexed into the real OpenSearch node,
then `load_passes` reads them back, tracks them and replaces the video's passes.
"""

from __future__ import annotations

import pytest

from reko.index.docs import detection_docs
from reko.runners.passes import PassSettings
from reko.runners.roster import Roster

pytestmark = pytest.mark.slow
VIDEO = "finish-0123456789"


def detect_text(frame: int, words: list[tuple[str, float, float, float]]) -> dict:
    """A DetectText response: one LINE and one WORD per (text, confidence, left, top)."""
    detections = []
    for ident, (text, confidence, left, top) in enumerate(words):
        box = {"Width": 0.06, "Height": 0.04, "Left": left, "Top": top}
        polygon = [{"X": left, "Y": top}, {"X": left + 0.06, "Y": top}]
        line = {"DetectedText": text, "Type": "LINE", "Id": 2 * ident, "Confidence": confidence}
        word = {**line, "Type": "WORD", "Id": 2 * ident + 1, "ParentId": 2 * ident}
        for det in (line, word):
            det["Geometry"] = {"BoundingBox": box, "Polygon": polygon}
            detections.append(det)
    return {"TextDetections": detections, "TextModelVersion": "3.0"}


def frames() -> list[dict]:
    """Runner 4172 crossing left to right at race pace (1 s sampling), misread once; a clock stays put."""
    reads = ["4172", "4172", "3172", None, "4172", "4172"]  # frame 3: hidden behind another runner
    responses = []
    for i, text in enumerate(reads):
        words = [(f"00:41:{20 + i:02d}", 99.0, 0.85, 0.05), ("42", 98.0, 0.05, 0.1)]
        if text:
            words.append((text, 96.0 if text == "4172" else 88.0, 0.05 + 0.15 * i, 0.55))
        responses.append(detect_text(i, words))
    return responses


@pytest.fixture
def indexed(os_client, index_names):
    from reko.index.bulk import bulk_load
    from reko.index.client import ensure_templates

    ensure_templates(os_client, index_names)
    actions = []
    for i, response in enumerate(frames()):
        for doc_id, doc in detection_docs(
            video_id=VIDEO,
            frame_index=i,
            timestamp_ms=i * 1000,
            frame_uri=f"s3://work/{VIDEO}/frames/finish.{i:07d}.jpg",
            kind="text",
            response=response,
            backend="aws",
            model="rekognition:3.0",
            min_confidence=50,
        ):
            actions.append({"_index": index_names.detections, "_id": doc_id, "_source": doc})
    bulk_load(os_client, actions)
    os_client.indices.refresh(index=index_names.detections)
    return VIDEO


def test_rekognition_words_become_one_pass_and_a_rerun_replaces_it(indexed, os_client, index_names):
    from reko.index.passes import load_passes
    from tests.conftest import snapshot

    settings = PassSettings(interval_ms=1000)
    found = load_passes(os_client, index_names, indexed, backend="aws", settings=settings)
    assert found["numbers"] == ["4172"] and found["passes"] == 1
    reasons = " ".join(r["reason"] for r in found["rejected"])
    assert "static" in reasons  # the sign (the clock's words are not numbers at all)
    (doc,) = snapshot(os_client, index_names.passes, indexed).values()
    assert (doc["start_ms"], doc["end_ms"], doc["frame_count"]) == (0, 5000, 5)
    assert doc["overruled"] == [{"text": "3172", "count": 1}] and doc["backend"] == "aws"
    assert doc["thumbnail_uri"].startswith("s3://work/")

    roster = Roster.parse("bib,name\n4172,Kim Min-jun\n", "roster.csv")
    found = load_passes(os_client, index_names, indexed, backend="aws", settings=settings, roster=roster)
    (doc,) = snapshot(os_client, index_names.passes, indexed).values()
    assert found["passes"] == 1 and doc["name"] == "Kim Min-jun" and doc["on_roster"] is True

    roster = Roster.parse("bib\n5021\n", "roster.csv")
    found = load_passes(os_client, index_names, indexed, backend="aws", settings=settings, roster=roster)
    assert found["passes"] == 0 and snapshot(os_client, index_names.passes, indexed) == {}
    assert any("not on roster" in r["reason"] for r in found["rejected"])
