"""One analysis batch: the result cache, re-analysis on request, and failures recorded per frame."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reko.analysis.base import Analysis, get_analysis
from reko.media import extract_frames
from reko.pipeline import analyse_batch
from reko.storage import VideoStore, read_json
from tests.conftest import SAMPLE_VIDEO


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("work")
    store = VideoStore.for_video(root.as_uri(), SAMPLE_VIDEO.as_uri(), 4.0)
    extract_frames(SAMPLE_VIDEO, root / store.video_id / "i4000ms" / "frames", store.stem, 4.0)
    return store


class Counting:
    """The real local analyser, counting calls and failing on chosen frames."""

    def __init__(self, fail_on: set[int] | None = None, model: str | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on or set()
        self.real = get_analysis("local", "text")
        self.model = model or self.real.model_version

    def factory(self, backend: str, kind: str) -> Analysis:
        def run(frame) -> dict:
            index = len(self.calls)
            self.calls.append(index)
            if index in self.fail_on:
                raise OSError("disk on fire")
            return self.real.run(frame)

        return Analysis(kind, backend, self.model, run)


def batch(store, counting, **kwargs):
    return analyse_batch(
        store,
        0,
        3,
        backend="local",
        analyses=["text"],
        interval_s=4.0,
        analysis_factory=counting.factory,
        **kwargs,
    )


def test_cache_reprocess_and_failure_records(store):
    first = Counting(fail_on={1})  # the second call (frame 1) fails
    report = batch(store, first)
    assert (report["made"], report["skipped"]) == (3, 0)
    assert report["failed"] == [
        {"frame_index": 1, "kind": "text", "reason": "OSError: disk on fire", "retryable": False}
    ]
    assert read_json(store.error("local", "text", 1))["reason"] == "OSError: disk on fire"
    result = read_json(store.result("local", "text", 0))
    assert (
        result["frame_index"] == 0
        and result["timestamp_ms"] == 0
        and result["model"] == first.real.model_version
    )
    assert read_json(store.result("local", "text", 2))["timestamp_ms"] == 8000

    second = Counting()
    report = batch(store, second)
    assert (report["made"], report["skipped"], report["failed"]) == (1, 2, [])
    assert not store.error("local", "text", 1).exists() and store.result("local", "text", 1).exists()

    third = Counting()
    started = datetime.now(UTC).isoformat()
    report = batch(store, third, reprocess=[2], not_before=started)
    assert (report["made"], report["skipped"]) == (1, 2)
    # a retry of the same run does not redo the re-analysis it already finished
    report = batch(store, Counting(), reprocess=[2], not_before=started)
    assert (report["made"], report["skipped"]) == (0, 3)


def test_results_of_another_model_are_analysed_again(store, caplog):
    """A new reader (or model version) is not served the old one's answers from the cache."""
    batch(store, Counting())  # every frame has a result of today's model
    upgraded = Counting(model="reader-of-tomorrow")
    with caplog.at_level("INFO", logger="reko.pipeline"):
        report = batch(store, upgraded)
    assert (report["made"], report["skipped"], report["stale_model"]) == (3, 0, 3)
    assert "3 stored results were made by another model" in caplog.text
    assert all(read_json(store.result("local", "text", i))["model"] == "reader-of-tomorrow" for i in range(3))
    report = batch(store, Counting(model="reader-of-tomorrow"))
    assert (report["made"], report["skipped"]) == (0, 3) and "stale_model" not in report
    batch(store, Counting())  # back to today's model for the other tests of this module


def test_a_missing_frame_image_is_a_recorded_failure(store, tmp_path):
    empty = VideoStore.for_video(tmp_path.as_uri(), SAMPLE_VIDEO.as_uri(), 4.0)
    report = batch(empty, Counting())
    assert report["made"] == 0
    assert [f["frame_index"] for f in report["failed"]] == [0, 1, 2]
    assert report["failed"][0]["reason"].startswith("frame image missing:")


def test_a_changed_source_video_drops_its_old_frames_and_results(tmp_path):
    import os
    import shutil

    from reko.media import probe
    from reko.pipeline import RunConfig, extract

    video = tmp_path / "race.mp4"
    shutil.copy(SAMPLE_VIDEO, video)
    cfg = RunConfig(video.as_uri(), "local", 4.0, ["text"], 50.0)
    store = VideoStore.for_video(tmp_path.as_uri(), video.as_uri(), 4.0)
    first = extract(cfg, store, probe(video, "v"))
    assert first["frame_count"] == 10
    marker = store.result("local", "text", 0)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}")
    reused = extract(cfg, store, probe(video, "v"))  # unchanged: reused, cache kept
    assert reused["this_run"]["extracted"] is False and first["this_run"]["extracted"] is True
    assert {k: v for k, v in reused.items() if k != "this_run"} == {
        k: v for k, v in first.items() if k != "this_run"
    }
    assert marker.exists()

    os.utime(video, (1, 1))  # the object at the same URI is now another version
    again = extract(cfg, store, probe(video, "v"))
    assert again["frame_count"] == 10 and again["source_fingerprint"] != first["source_fingerprint"]
    assert not marker.exists()


def test_a_frame_identical_to_the_previous_one_reuses_its_result_without_a_call(tmp_path):
    """A static shot gives byte-identical frames: one call for the run, also across batches."""
    import shutil

    from reko.media import frame_name

    store = VideoStore.for_video(tmp_path.as_uri(), SAMPLE_VIDEO.as_uri(), 4.0)
    frames = tmp_path / store.video_id / "i4000ms" / "frames"
    extract_frames(SAMPLE_VIDEO, frames, store.stem, 4.0)
    for index in (2, 3, 4):  # frames 2-4 become copies of frame 1
        shutil.copy(frames / frame_name(store.stem, 1), frames / frame_name(store.stem, index))

    counting = Counting()
    first = analyse_batch(
        store, 0, 3, backend="local", analyses=["text"], interval_s=4.0, analysis_factory=counting.factory
    )
    assert (first["made"], first["duplicates"], first["failed"]) == (2, 1, [])
    second = analyse_batch(
        store, 3, 6, backend="local", analyses=["text"], interval_s=4.0, analysis_factory=counting.factory
    )
    assert (second["made"], second["duplicates"]) == (1, 2)  # frames 3 and 4 copy frame 2's (= 1's)
    assert len(counting.calls) == 3
    one = read_json(store.result("local", "text", 1))
    for index in (2, 3, 4):
        copy = read_json(store.result("local", "text", index))
        assert copy["response"] == one["response"] and copy["duplicate_of"] == 1
        assert (copy["frame_index"], copy["timestamp_ms"]) == (index, index * 4000)
        assert copy["frame_uri"].endswith(frame_name(store.stem, index))
    assert "duplicate_of" not in read_json(store.result("local", "text", 5))


def test_a_near_duplicate_frame_reuses_the_previous_result_when_enabled(tmp_path, monkeypatch):
    """REKO_NEAR_DUPLICATE_BITS: a frame that differs only by noise and re-encoding (not by a byte
    check) copies the previous frame's result; off by default, and a changed frame is analysed."""
    import numpy as np
    from PIL import Image

    from reko.media import frame_name

    store = VideoStore.for_video(tmp_path.as_uri(), SAMPLE_VIDEO.as_uri(), 4.0)
    frames = tmp_path / store.video_id / "i4000ms" / "frames"
    extract_frames(SAMPLE_VIDEO, frames, store.stem, 4.0)
    base = np.asarray(Image.open(frames / frame_name(store.stem, 1)).convert("RGB")).astype(np.int16)
    noise = np.random.default_rng(0).integers(-3, 4, base.shape)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(
        frames / frame_name(store.stem, 2), quality=80
    )
    off = analyse_batch(
        store, 0, 3, backend="local", analyses=["text"], interval_s=4.0, analysis_factory=Counting().factory
    )
    assert (off["made"], off["duplicates"], off["near_duplicates"]) == (3, 0, 0)

    monkeypatch.setenv("REKO_NEAR_DUPLICATE_BITS", "4")
    counting = Counting()
    on = analyse_batch(
        store,
        0,
        4,
        backend="local",
        analyses=["text"],
        interval_s=4.0,
        analysis_factory=counting.factory,
        reprocess=range(4),
    )
    assert (on["made"], on["duplicates"], on["near_duplicates"]) == (3, 1, 1)  # frame 3 has moved on
    copy = read_json(store.result("local", "text", 2))
    assert copy["duplicate_of"] == 1
    assert copy["response"] == read_json(store.result("local", "text", 1))["response"]

    monkeypatch.setenv("REKO_NEAR_DUPLICATE_BITS", "-1")
    with pytest.raises(ValueError, match="REKO_NEAR_DUPLICATE_BITS"):
        analyse_batch(store, 0, 1, backend="local", analyses=["text"], interval_s=4.0, reprocess=[0])
