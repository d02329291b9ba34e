"""Runner passes on realistic finish-line footage, end to end with dag.test() and a real OpenSearch node.

`include/sample/finish-s1.mp4` (the tuning seed of `include/sample/make_finish.py`, generated here
over Debian's opencv-doc street scene on first use: no derived video is committed) has small,
tilted, blurred and shaded bibs, occlusions, crossings, a race clock, a "KM 42" sign and the race
year on every bib. Its runs use their own DagBag copy: dag.test() writes a run's conf into the
DAG's Params, and a roster must not leak into other modules' runs.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import pytest

from reko.storage import video_id_for
from tests.conftest import REPO, snapshot
from tests.support.finish import finish_s1_video

pytestmark = pytest.mark.slow
FINISH = REPO / "include" / "sample" / "finish-s1.mp4"
TRUTH = FINISH.with_suffix(".truth.json")
ROSTER = FINISH.with_suffix(".roster.csv")
INTERVAL_MS = 1000
# regression floors under what this seed measured at 1 s with its roster and re-reading
# (bench/results/runners.md: 19/19 whole, frame recall 1.000, no false pass; 17/19 and 0.932 by the
# tracker alone); one pass and a few frames of slack, the held-out seed is the benchmark's to report
MIN_WHOLE_SHARE = 0.9
MIN_FRAME_RECALL = 0.95


@pytest.fixture(scope="module")
def finish_video() -> Path:
    return finish_s1_video()


@pytest.fixture(scope="module")
def finish_dag(airflow_db, opensearch_url):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads(TRUTH.read_text())


@pytest.fixture(scope="module")
def analysed(finish_video, finish_dag, os_client):
    """The footage analysed once with its roster: the video id and its passes."""
    from reko.index.client import IndexNames

    dag_run = finish_dag.test(run_conf={"video_uri": FINISH.as_uri(), "roster_uri": ROSTER.as_uri()})
    assert dag_run.state == "success"
    video_id = video_id_for(FINISH.as_uri())
    names = IndexNames.current()
    return {
        "video_id": video_id,
        "passes": snapshot(os_client, names.passes, video_id),
        "video": os_client.get(index=names.videos, id=video_id)["_source"],
    }


def test_each_runner_pass_is_one_pass_with_its_roster_number(analysed, truth):
    from reko.runners.truth import score

    result = score(truth, analysed["passes"].values(), interval_ms=INTERVAL_MS)
    print(json.dumps(result.summary() | {"per_bib": result.rows}))
    assert result.false_passes == []  # with a roster: nothing that is not a runner on it
    assert result.whole / result.passes >= MIN_WHOLE_SHARE, result.rows
    assert result.frame_recall >= MIN_FRAME_RECALL, result.rows
    assert analysed["video"]["counts"]["passes"] == len(analysed["passes"])
    roster_bibs = {line.split(",")[0] for line in ROSTER.read_text().splitlines()[1:]}
    assert {p["number"] for p in analysed["passes"].values()} <= roster_bibs
    assert all(p["on_roster"] and p["name"] for p in analysed["passes"].values())


def test_clocks_signs_and_the_year_are_never_runners(analysed):
    numbers = {p["number"] for p in analysed["passes"].values()}
    assert numbers.isdisjoint({"2026", "202", "42"})


def test_a_name_finds_the_runners_passes(analysed, os_client, index_names, truth):
    from reko.web.search import search_frames

    runner = next(r for r in truth["runners"] if any(p["bib"] == r["bib"] for p in truth["passes"]))
    surname = runner["name"].split()[-1]
    result = search_frames(os_client, index_names, text=surname, video_id=analysed["video_id"])
    found = [p for v in result["videos"] for p in v["passes"]]
    assert found and {p["number"] for p in found} == {
        r["bib"] for r in truth["runners"] if surname.lower() in r["name"].lower().split()
    } & {p["number"] for p in analysed["passes"].values()}
    frames = [f for v in result["videos"] for f in v["frames"]]
    assert frames and all(d["bbox"] for f in frames for d in f["detections"])


def test_video_clips_cuts_one_clip_per_pass(analysed, os_client, index_names, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    clips_dag = DagBag(dag_folder=str(REPO / "dags" / "video_clips.py")).dags["video_clips"]
    padding_s = 0.5
    by_number: dict[str, list[dict]] = {}
    for p in sorted(analysed["passes"].values(), key=lambda p: p["start_ms"]):
        by_number.setdefault(p["number"], []).append(p)

    def apart(passes: list[dict]) -> bool:  # padded clips of adjacent passes rightly join into one
        return all(b["start_ms"] - a["end_ms"] > 2000 * padding_s for a, b in itertools.pairwise(passes))

    bib = max((n for n, ps in by_number.items() if apart(ps)), key=lambda n: len(by_number[n]))
    assert len(by_number[bib]) >= 2  # the seed has runners on two laps: one of them is found twice
    conf = {"subject": bib, "video_ids": [analysed["video_id"]], "padding_s": padding_s, "merge_gap_s": 0}
    assert clips_dag.test(run_conf=conf).state == "success"
    clips = [
        c
        for c in snapshot(os_client, index_names.clips, analysed["video_id"]).values()
        if c["subject"] == bib
    ]
    mine = sorted(i for i, p in analysed["passes"].items() if p["number"] == bib)
    assert sorted(i for c in clips for i in c["segment_ids"]) == mine
    assert len(clips) == len(mine)


def test_a_bad_roster_fails_the_run_at_probe_and_writes_nothing(
    finish_video, finish_dag, os_client, index_names, tmp_path
):
    from reko.config import work_uri
    from reko.pipeline import RunConfig, probe_video

    video = tmp_path / "finish-bad-roster.mp4"
    shutil.copy(FINISH, video)
    roster = tmp_path / "roster.csv"
    roster.write_text("bib,name\n4172,Kim\n5021,Lee\n4172,Park\n")
    conf = {"video_uri": video.as_uri(), "roster_uri": roster.as_uri()}
    params = {p: finish_dag.params[p] for p in finish_dag.params} | conf
    with pytest.raises(ValueError, match=re.escape("row 4: bib 4172 is a duplicate of row 2")):
        probe_video(RunConfig.from_params(params), work_uri())
    dag_run = finish_dag.test(run_conf=conf)
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index < 1}
    assert states["probe"] == "failed" and states.get("extract_frames") not in ("success", "failed")
    video_id = video_id_for(video.as_uri())
    for index in (index_names.detections, index_names.segments, index_names.passes):
        assert snapshot(os_client, index, video_id) == {}
    assert not os_client.exists(index=index_names.videos, id=video_id)
    assert not (Path(work_uri().removeprefix("file://")) / video_id).exists()
