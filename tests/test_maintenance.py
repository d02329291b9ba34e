"""Reprocess a video with new settings (old documents replaced, never mixed) and delete a video."""

from __future__ import annotations

from pathlib import Path

import pytest

from reko.index.lease import Holder, claim
from reko.maintenance import VideoBusyError, delete_video
from reko.storage import video_id_for
from tests.conftest import REPO, SAMPLE_VIDEO, snapshot
from tests.support.same_index import assert_same_index, index_state
from tests.support.short_videos import copy_under, cut_of

pytestmark = pytest.mark.slow
CUT_S = 13  # the sample's first 13 s: frames at 0, 6 and 12 s, or 0, 4, 8 and 12 s (1042 in 2.2-7.6 s)


@pytest.fixture(scope="module")
def own_analysis_dag(airflow_db, opensearch_url):
    """A DagBag copy of its own: dag.test() writes run conf into the DAG's Params, which must not
    leak the intervals and flags used here into other modules' runs."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]


@pytest.fixture(scope="module")
def short_race(tmp_path_factory) -> Path:
    """Reprocessing and deleting do not depend on a video's length: a cut keeps each run short."""
    return cut_of(SAMPLE_VIDEO, tmp_path_factory.mktemp("maintenance") / "race.mp4", 0, CUT_S)


@pytest.fixture(scope="module")
def maintenance_dag(airflow_db, opensearch_url):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "video_maintenance.py")).dags["video_maintenance"]


def test_reprocessing_with_a_new_interval_replaces_every_old_document(
    own_analysis_dag, os_client, index_names, short_race, tmp_path
):
    video, clean = copy_under(short_race, tmp_path, "reprocessed"), copy_under(short_race, tmp_path, "clean")
    for uri, conf in (
        (video.as_uri(), {"frame_interval_s": 4.0, "analyses": ["text"]}),
        (video.as_uri(), {"frame_interval_s": 6.0}),
        (clean.as_uri(), {"frame_interval_s": 6.0}),
    ):
        assert own_analysis_dag.test(run_conf={"video_uri": uri, **conf}).state == "success"
    assert_same_index(
        index_state(os_client, index_names, clean.as_uri()),
        index_state(os_client, index_names, video.as_uri()),
        kinds=("detections", "segments"),
    )
    vid = video_id_for(video.as_uri())
    stamps = {d["timestamp_ms"] for d in snapshot(os_client, index_names.detections, vid).values()}
    assert stamps and all(t % 6000 == 0 for t in stamps)  # nothing left from the 4 s interval
    doc = os_client.get(index=index_names.videos, id=vid)["_source"]
    assert doc["frame_interval_ms"] == 6000 and doc["frame_count"] == 3


def test_delete_removes_documents_frames_and_clips_and_nothing_else(
    own_analysis_dag, maintenance_dag, os_client, index_names, short_race, tmp_path
):
    from reko.config import work_uri
    from reko.storage import local_path, parse_uri

    doomed, kept = copy_under(short_race, tmp_path, "doomed"), copy_under(short_race, tmp_path, "kept")
    for video in (doomed, kept):
        conf = {"video_uri": video.as_uri(), "frame_interval_s": 6.0}
        assert own_analysis_dag.test(run_conf=conf).state == "success"
    doomed_id, kept_id = video_id_for(doomed.as_uri()), video_id_for(kept.as_uri())
    os_client.index(  # a clip document, as video_clips registers them
        index=index_names.clips,
        id=f"{doomed_id}-text-1042",
        body={"video_id": doomed_id, "kind": "text", "subject": "1042"},
        params={"refresh": "true"},
    )
    os_client.index(  # a runner pass (at a 6 s interval the sample's runners are seen once each)
        index=index_names.passes,
        id=f"{doomed_id}:pass:1042:0000001",
        body={"video_id": doomed_id, "number": "1042", "start_ms": 6000, "end_ms": 6000},
        params={"refresh": "true"},
    )
    tree = local_path(parse_uri(work_uri()) / doomed_id)
    assert tree.is_dir()
    before = {
        kind: len(snapshot(os_client, getattr(index_names, kind), kept_id))
        for kind in ("detections", "segments")
    }

    refused = maintenance_dag.test(run_conf={"video": doomed_id})
    assert refused.state == "failed" and tree.is_dir()  # not confirmed: nothing deleted

    # a live run holds the lease: the delete is refused and nothing is removed
    busy, me = Holder("video_analysis", "still-running"), Holder("video_maintenance", "delete")
    assert claim(os_client, index_names, doomed_id, busy, lambda h: True) is None
    with pytest.raises(VideoBusyError, match="still-running"):
        delete_video(os_client, index_names, work_uri(), doomed_id, me, lambda holder: holder == busy)
    assert tree.is_dir() and snapshot(os_client, index_names.detections, doomed_id)

    # that run has ended (the DAG's task asks Airflow; a run it cannot find holds nothing)
    run = maintenance_dag.test(run_conf={"video": doomed.as_uri(), "confirm_delete": True})
    assert run.state == "success"
    for kind in ("detections", "segments", "passes", "videos", "clips"):
        assert snapshot(os_client, getattr(index_names, kind), doomed_id) == {}, kind
    assert not tree.exists() and doomed.exists()  # the source video is kept
    after = {
        kind: len(snapshot(os_client, getattr(index_names, kind), kept_id))
        for kind in ("detections", "segments")
    }
    assert after == before and os_client.exists(index=index_names.videos, id=kept_id)
