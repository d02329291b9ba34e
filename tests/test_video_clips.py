"""`video_clips`: planning rules, and the DAG on the analysed sample (real OpenSearch, real ffmpeg)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reko.clip_pipeline import ClipConfig, ClipInputError, clip_id, plan_clips, plan_ranges
from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO, snapshot

INTERVAL_MS = 1000
FRAME_S = 0.04  # the sample is 25 fps


def seg(start_ms: int, end_ms: int, sid: str = "s") -> tuple[str, dict]:
    return f"{sid}{start_ms}", {"start_ms": start_ms, "end_ms": end_ms}


def ranges(segments, **kw):
    args = {"interval_ms": 1000, "duration_ms": 60_000, "padding_ms": 0, "merge_gap_ms": 0, **kw}
    return [(r.start_ms, r.end_ms, r.segment_ids) for r in plan_ranges(segments, **args)]


def test_a_segment_covers_its_last_capture_interval():
    assert ranges([seg(5000, 8000)]) == [(5000, 9000, ["s5000"])]
    assert ranges([seg(5000, 5000)]) == [(5000, 6000, ["s5000"])]  # seen once: one interval, not empty


def test_segments_closer_than_the_merge_gap_become_one_range():
    two = [seg(20_000, 22_000), seg(2000, 5000)]
    assert ranges(two, merge_gap_ms=14_000) == [(2000, 23_000, ["s2000", "s20000"])]
    assert ranges(two, merge_gap_ms=13_999) == [(2000, 6000, ["s2000"]), (20_000, 23_000, ["s20000"])]


def test_padding_is_clamped_to_the_video_and_overlapping_ranges_join():
    # [1000, 3000) and [8000, 10000) padded by 3 s overlap, so they become one clip
    out = ranges([seg(1000, 2000), seg(8000, 9000)], padding_ms=3000, duration_ms=11_000)
    assert out == [(0, 11_000, ["s1000", "s8000"])]
    assert ranges([seg(1000, 2000)], padding_ms=2000, duration_ms=3500) == [(0, 3500, ["s1000"])]


def test_a_segment_past_the_end_of_its_video_is_a_clear_error():
    with pytest.raises(ClipInputError, match=r"starts at 40\.000 s, past the end of its video \(38\.000 s\)"):
        ranges([seg(40_000, 41_000)], duration_ms=38_000)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"padding_s": -1}, "padding_s must be between 0 and 600"),
        ({"merge_gap_s": 4000}, "merge_gap_s must be between 0 and 3600"),
        ({"min_confidence": 101}, "min_confidence must be between 0 and 100"),
        ({"backend": "gpu"}, "backend 'gpu' is not one of"),
        ({"kind": "labels"}, "kind 'labels' cannot be clipped yet"),
        ({"kind": "faces"}, "kind 'faces' needs face_photo_uri or face_id"),
        ({"face_id": "v:0000001:face:000"}, r"give either a text subject \('1042'\) or a face"),
        (
            {"subject": "", "face_id": "x", "face_photo_uri": "file:///p.jpg"},
            "face_photo_uri or face_id, not both",
        ),
        ({"subject": "", "face_id": "x", "face_threshold": 101}, "face_threshold must be a similarity"),
    ],
)
def test_bad_params_name_the_param(params, message):
    with pytest.raises(ClipInputError, match=message):
        ClipConfig.from_params({"subject": "1042", **params})


def test_the_watch_list_is_used_only_without_a_subject():
    assert ClipConfig.from_params({"subject": " 1042 "}, ["257"]).subjects == ["1042"]
    assert ClipConfig.from_params({"subject": ""}, ["257", " ", "257", "908"]).subjects == ["257", "908"]


def test_clip_ids_are_deterministic_and_safe_for_any_subject():
    a = clip_id("race-1", "text", "서울 국제 마라톤", 1000, 5000)
    assert a == clip_id("race-1", "text", "서울 국제 마라톤", 1000, 5000)
    assert a != clip_id("race-1", "text", "서울 국제 마라톤", 1000, 6000)
    assert "/" not in clip_id("v", "text", "A/B", 0, 1) and " " not in a


# --- against the real index ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed_sample(analysis_dag, os_client):
    """The sample's video id, analysed once (reused when an earlier test module already did it)."""
    from reko.index.client import IndexNames

    video_id = video_id_for(SAMPLE_VIDEO.as_uri())
    if not os_client.exists(index=IndexNames.current().videos, id=video_id):
        assert analysis_dag.test(run_conf={"video_uri": SAMPLE_VIDEO.as_uri()}).state == "success"
    return video_id


@pytest.fixture(scope="module")
def clips_dag(airflow_db, opensearch_url):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(Path(__file__).parents[1] / "dags" / "video_clips.py")).dags["video_clips"]


def run_clips(dag, **conf):
    """A hand-triggered run (tests name their video: other test modules index other videos)."""
    dag_run = dag.test(run_conf=conf)
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index < 1}


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return json.loads(out.stdout)


def clips_of(os_client, names, video_id, subject):
    return sorted(
        (c for c in snapshot(os_client, names.clips, video_id).values() if c["subject_norm"] == subject),
        key=lambda c: c["start_ms"],
    )


@pytest.mark.slow
def test_every_watched_bib_gets_a_playable_clip_at_the_true_times(
    clips_dag, analysed_sample, os_client, index_names, sample_truth, monkeypatch
):
    bibs = [b["text"] for b in sample_truth["bibs"]]
    monkeypatch.setenv("AIRFLOW_VAR_REKO_CLIP_WATCHLIST", json.dumps(bibs))
    dag_run, states = run_clips(clips_dag, video_ids=[analysed_sample], padding_s=1.0, merge_gap_s=2.0)
    assert dag_run.state == "success", states
    report = {}
    for bib in sample_truth["bibs"]:
        clips = clips_of(os_client, index_names, analysed_sample, bib["text"])
        truth = bib["segments"]
        report[bib["text"]] = [(c["start_ms"], c["end_ms"]) for c in clips]
        assert len(clips) == len(truth), (bib["text"], report[bib["text"]], truth)
        for clip, t in zip(clips, truth, strict=True):
            tolerance_ms = INTERVAL_MS + clip["padding_ms"] + 40
            assert abs(clip["start_ms"] - max(0, t["start_s"] * 1000 - clip["padding_ms"])) <= tolerance_ms
            assert abs(clip["end_ms"] - min(38_000, t["end_s"] * 1000 + clip["padding_ms"])) <= tolerance_ms
            path = Path(clip["clip_uri"].removeprefix("file://"))
            probed = ffprobe(path)
            assert {s["codec_type"] for s in probed["streams"]} >= {"video"}
            assert abs(float(probed["format"]["duration"]) - clip["duration_s"]) <= FRAME_S + 0.03
            assert abs(clip["duration_s"] - (clip["end_ms"] - clip["start_ms"]) / 1000) <= FRAME_S
            assert clip["size_bytes"] == path.stat().st_size and clip["method"] == "smart"
    print(json.dumps(report))


@pytest.mark.slow
def test_a_rerun_does_not_duplicate_and_a_changed_range_replaces_the_clip(
    clips_dag, analysed_sample, os_client, index_names
):
    dag_run, _ = run_clips(clips_dag, subject="3318", video_ids=[analysed_sample], padding_s=0, merge_gap_s=0)
    assert dag_run.state == "success"
    first = clips_of(os_client, index_names, analysed_sample, "3318")
    assert len(first) == 2  # seen at 10-15 s and again at 28-33 s
    dag_run, _ = run_clips(clips_dag, subject="3318", video_ids=[analysed_sample], padding_s=0, merge_gap_s=0)
    assert [c["clip_uri"] for c in clips_of(os_client, index_names, analysed_sample, "3318")] == [
        c["clip_uri"] for c in first
    ]

    one_video = {"subject": "3318", "video_ids": [analysed_sample], "padding_s": 0}
    dag_run, _ = run_clips(clips_dag, **one_video, merge_gap_s=30)
    assert dag_run.state == "success"
    merged = clips_of(os_client, index_names, analysed_sample, "3318")
    assert len(merged) == 1 and merged[0]["start_ms"] == first[0]["start_ms"]
    assert merged[0]["end_ms"] == first[1]["end_ms"]
    for old in first:
        assert not Path(old["clip_uri"].removeprefix("file://")).exists()
    assert Path(merged[0]["clip_uri"].removeprefix("file://")).exists()


@pytest.mark.slow
def test_a_subject_seen_nowhere_ends_the_run_successfully_without_clips(
    clips_dag, analysed_sample, os_client, index_names
):
    dag_run, states = run_clips(clips_dag, subject="99999")
    assert dag_run.state == "success"
    assert states["plan_clips"] == "success" and states["register_clips"] == "success"
    assert clips_of(os_client, index_names, analysed_sample, "99999") == []


@pytest.mark.slow
def test_an_unknown_video_fails_the_run_at_planning(clips_dag, analysed_sample):
    dag_run, states = run_clips(clips_dag, subject="1042", video_ids=["no-such-video"])
    assert dag_run.state == "failed" and states["plan_clips"] == "failed"


def test_planning_names_unknown_videos_and_deleted_sources(os_client, index_names, tmp_path):
    from reko.index.client import ensure_templates

    ensure_templates(os_client, index_names)
    cfg = ClipConfig.from_params({"subject": "7777", "video_ids": ["ghost"]})
    with pytest.raises(ClipInputError, match=r"unknown video ids \['ghost'\]"):
        plan_clips(os_client, index_names, cfg, tmp_path.as_uri())

    # a video whose source file was removed after it was analysed
    source = tmp_path / "gone.mp4"
    shutil.copy(SAMPLE_VIDEO, source)
    video_id = video_id_for(source.as_uri())
    os_client.index(
        index=index_names.videos,
        id=video_id,
        body={
            "video_id": video_id,
            "source_uri": source.as_uri(),
            "duration_ms": 38_000,
            "fps": 25.0,
            "frame_interval_ms": 1000,
        },
        params={"refresh": "true"},
    )
    os_client.index(
        index=index_names.segments,
        id=f"{video_id}:text:x:0000003",
        body={
            "video_id": video_id,
            "kind": "text",
            "value": "7777",
            "value_norm": "7777",
            "start_ms": 3000,
            "end_ms": 5000,
            "best_confidence": 95.0,
        },
        params={"refresh": "true"},
    )
    cfg = ClipConfig.from_params({"subject": "7777"})
    assert len(plan_clips(os_client, index_names, cfg, tmp_path.as_uri())["items"]) == 1
    source.unlink()
    with pytest.raises(ClipInputError, match=f"the source of video {video_id} was deleted"):
        plan_clips(os_client, index_names, cfg, tmp_path.as_uri())


@pytest.mark.slow
def test_a_phrase_inside_a_longer_line_is_planned_from_its_lines(
    analysed_sample, os_client, index_names, tmp_path
):
    """'국제 마라톤' is read only as part of the caption line '서울 국제 마라톤' (10-19 s in the
    sample): no segment document is of it, and its clip spans the lines that hold it."""
    cfg = ClipConfig.from_params({"subject": "국제 마라톤", "video_ids": [analysed_sample], "padding_s": 0})
    plan = plan_clips(os_client, index_names, cfg, tmp_path.as_uri())
    ((start_ms, end_ms),) = [(i["start_ms"], i["end_ms"]) for i in plan["items"]]
    assert abs(start_ms - 10_000) <= INTERVAL_MS and abs(end_ms - 20_000) <= INTERVAL_MS, (start_ms, end_ms)
    # the same words in another order are not the phrase
    nowhere = ClipConfig.from_params({"subject": "마라톤 국제", "video_ids": [analysed_sample]})
    assert plan_clips(os_client, index_names, nowhere, tmp_path.as_uri())["items"] == []


# --- a person as the subject ---------------------------------------------------------------------

FACES_SEED = 7  # two stretches of the person (0.8-4.8 s and 6.0-8.0 s): a seed no other test uses
FACES_DURATION_S = 8.0
FACES_INTERVAL_S = 0.4
PHOTOS = Path(__file__).parents[1] / "include" / "sample" / "faces"


@pytest.fixture(scope="module")
def faces_video(tmp_path_factory, os_client):
    """A composed video of real faces (make_faces.py) analysed for faces into the session's indices."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "include" / "sample"))
    import make_faces

    from reko.index.client import IndexNames
    from reko.pipeline import RunConfig, analyse_video, probe_video

    root = tmp_path_factory.mktemp("clip-faces")
    video, truth_path = make_faces.make(FACES_SEED, root, FACES_DURATION_S, FACES_INTERVAL_S)
    cfg = RunConfig.from_params(
        {
            "video_uri": video.as_uri(),
            "backend": "local",
            "frame_interval_s": FACES_INTERVAL_S,
            "analyses": ["faces"],
            "min_confidence": 50,
        }
    )
    job = probe_video(cfg, os.environ["REKO_WORK_URI"])
    analyse_video(os_client, IndexNames.current(), job, dag_id="video_analysis", run_id="clip-faces")
    return {"video_id": job.store.video_id, "truth": json.loads(truth_path.read_text()), "root": root}


def person_stretches(truth: dict) -> list[tuple[int, int]]:
    """(first, last capture time) of each run of consecutive captures that show the target person."""
    runs: list[list[int]] = []
    last = None
    for frame in truth["frames"]:
        if any(f["person"] == truth["target_person"] for f in frame["faces"]):
            if last is not None and frame["index"] == last + 1:
                runs[-1][1] = frame["t_ms"]
            else:
                runs.append([frame["t_ms"], frame["t_ms"]])
            last = frame["index"]
    return [(a, b) for a, b in runs]


@pytest.mark.slow
def test_a_reference_photo_cuts_one_clip_per_stretch_of_that_person(
    clips_dag, faces_video, os_client, index_names
):
    from airflow.dag_processing.dagbag import DagBag

    truth, video_id = faces_video["truth"], faces_video["video_id"]
    photo = PHOTOS / f"{truth['query_photo']}.jpg"
    assert truth["query_photo"] not in truth["target_photos_in_video"]  # not a frame of the video
    stretches = person_stretches(truth)
    assert len(stretches) == 2, stretches
    # its own copy: dag.test() writes a run's conf into the DAG's Params (a face would leak)
    dag = DagBag(dag_folder=clips_dag.fileloc).dags["video_clips"]
    conf = {"video_ids": [video_id], "padding_s": 0, "merge_gap_s": 0.5}
    dag_run, states = run_clips(dag, face_photo_uri=photo.as_uri(), **conf)
    assert dag_run.state == "success", states
    clips = sorted(
        (c for c in snapshot(os_client, index_names.clips, video_id).values() if c["kind"] == "faces"),
        key=lambda c: c["start_ms"],
    )
    interval_ms = round(FACES_INTERVAL_S * 1000)
    assert len(clips) == len(stretches), ([(c["start_ms"], c["end_ms"]) for c in clips], stretches)
    for clip, (first, last) in zip(clips, stretches, strict=True):
        # from the first capture that shows the person to one interval after the last (a face
        # under the detector's size may be missed at either end: one capture's leeway)
        assert abs(clip["requested_start_ms"] - first) <= interval_ms, (clip, first)
        assert abs(clip["requested_end_ms"] - (last + interval_ms)) <= interval_ms, (clip, last)
        path = Path(clip["clip_uri"].removeprefix("file://"))
        assert clip["size_bytes"] == path.stat().st_size > 0
        assert abs(clip["duration_s"] - (clip["end_ms"] - clip["start_ms"]) / 1000) <= FRAME_S
        # named by a face of the index, cut along face tracks: no embedding, no photo
        assert clip["subject"].startswith("face:") and clip["subject_norm"] == clip["subject"].upper()
        assert all(":ft:" in s for s in clip["segment_ids"]), clip["segment_ids"]
        assert "embedding" not in json.dumps(clip) and photo.name not in json.dumps(clip)
    assert len({c["subject"] for c in clips}) == 1

    # the same person by the face id the clips name: the same plan
    face_id = clips[0]["subject"].removeprefix("face:")
    by_face = plan_clips(
        os_client,
        index_names,
        ClipConfig.from_params({"face_id": face_id, **conf}),
        faces_video["root"].as_uri(),
    )
    assert [(i["start_ms"], i["end_ms"]) for i in by_face["items"]] == [
        (c["requested_start_ms"], c["requested_end_ms"]) for c in clips
    ]

    # a photo without a face fails the run at once, with the reason
    from PIL import Image

    blank = faces_video["root"] / "wall.jpg"
    Image.new("RGB", (640, 480), (120, 120, 120)).save(blank, "JPEG")
    dag_run, states = run_clips(dag, face_photo_uri=blank.as_uri(), **conf)
    assert dag_run.state == "failed" and states["plan_clips"] == "failed", states


@pytest.mark.slow
def test_a_bad_face_subject_names_the_problem(faces_video, os_client, index_names, tmp_path):
    from PIL import Image

    def plan(**params):
        cfg = ClipConfig.from_params({"video_ids": [faces_video["video_id"]], **params})
        return plan_clips(os_client, index_names, cfg, tmp_path.as_uri())

    blank = tmp_path / "wall.png"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(blank, "PNG")
    with pytest.raises(ClipInputError, match=r"face_photo_uri .*wall\.png.*: no face found in the photo"):
        plan(face_photo_uri=blank.as_uri())
    with pytest.raises(ClipInputError, match=r"face_photo_uri .*missing\.jpg' does not exist"):
        plan(face_photo_uri=(tmp_path / "missing.jpg").as_uri())
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    with pytest.raises(ClipInputError, match="not a JPEG or PNG"):
        plan(face_photo_uri=notes.as_uri())
    with pytest.raises(ClipInputError, match="unsupported scheme"):
        plan(face_photo_uri="https://example.com/p.jpg")
    with pytest.raises(ClipInputError, match=r"face_id 'ghost:0000000:face:000' is not in the faces index"):
        plan(face_id="ghost:0000000:face:000")
