"""Load: one-second videos through `video_archive_scan` under the real scheduler.

The suite runs 20 videos, enough to prove exactly-once under the real scheduler (more runs than
the bound of 8 analysis runs at once, most of them queued for a slot); `make soak` runs 200
(REKO_LOAD_VIDEOS). 20, not 30: the suite is CPU-bound on 2 cores, and a video costs ~7.7 CPU-s here.

Every video is analysed exactly once (one run under its fixed id, each frame one analyser call), a
second scan of the same day starts nothing, and the time and the slowest stage are reported: printed
and written to tests/artifacts/archive-load.json. For a one-second clip Airflow's own work per task
instance (a process, the DAG file parsed, execution API calls) costs more CPU than the OCR, and
tasks wait on the API server, so the deployment runs 8 task processes at once on 2 cores.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from reko.archive import ScanSettings, analysis_run_id
from reko.storage import fingerprint_of, video_id_for
from tests.support.archive_load import ANALYSIS_DAG_ID, SCAN_DAG_ID, make_archive, run_scan

pytestmark = pytest.mark.slow
VIDEOS = int(os.environ.get("REKO_LOAD_VIDEOS", "20"))  # make soak: 200
PARALLELISM = 8
MAX_ACTIVE = 8  # analysis runs at once; the others wait queued
REPORT = Path(__file__).parent / "artifacts" / "archive-load.json"


@pytest.fixture(scope="module")
def scanned(shared_airflow, tmp_path_factory):
    """The archive, the analyser's calls log after each scan, and two scan runs of the same day.

    The shared deployment runs PARALLELISM task processes and MAX_ACTIVE analysis runs at once
    (`SharedDeployment.env_for`); the archive is this module's, given to each scan run as its prefix.
    """
    root = tmp_path_factory.mktemp("load")
    videos = make_archive(root / "archive", VIDEOS)
    calls = shared_airflow.faults.calls
    env = shared_airflow.services.env
    assert (env["AIRFLOW__CORE__PARALLELISM"], env["REKO_MAX_ACTIVE_ANALYSES"]) == (
        str(PARALLELISM),
        str(MAX_ACTIVE),
    )
    prefix = (root / "archive").as_uri()
    with shared_airflow.use([ANALYSIS_DAG_ID, SCAN_DAG_ID]) as client:
        pids = {name: proc.pid for name, proc in shared_airflow.services.procs.items()}
        first = run_scan(client, timeout_s=2400, service_pids=pids, prefix=prefix)
        report(first)
        logged = calls.read_text().split()
        again = run_scan(client, timeout_s=600, attempt=2, prefix=prefix)
        yield videos, logged, calls.read_text().split(), first, again


def report(outcome) -> None:
    """The time and the slowest stage, printed and written before anything is asserted."""
    timing = outcome.accounting()
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(timing, indent=2))
    slowest = timing["slowest_stage"]
    print(
        f"\n{timing['videos']} videos in {timing['wall_s']} s ({timing['videos_per_hour']} videos/hour);"
        f" slowest stage {slowest}: {timing['stages'].get(slowest)}; CPU {timing['cpu_s_by_service']}"
    )


def test_every_video_of_the_archive_is_analysed_exactly_once(scanned, os_client, index_names):
    videos, logged, logged_after_again, first, again = scanned
    assert first.scan_run["state"] == "success"
    assert first.summary["new"] == first.summary["analysed"] == VIDEOS
    assert first.summary["rejected"] == {} and first.summary["overflow"] == 0
    settings = ScanSettings("local", 1.0, ["text"], 50.0)
    expected = {}
    for path in videos:
        stat = path.stat()
        fingerprint = fingerprint_of({"size": stat.st_size, "mtime": stat.st_mtime})
        expected[analysis_run_id(video_id_for(path.as_uri()), settings.key, fingerprint)] = path
    assert {r["dag_run_id"] for r in first.analysis_runs} == expected.keys()
    assert {r["state"] for r in first.analysis_runs} == {"success"}
    # the waiter was ended by its trigger in the triggerer: never queued again to resume in a process
    (waiter,) = [ti for ti in first.scan_tis if ti["task_id"] == "wait_for_analyses"]
    last_run_end = max(datetime.fromisoformat(r["end_date"]) for r in first.analysis_runs)
    assert waiter["state"] == "success" and datetime.fromisoformat(waiter["queued_when"]) < last_run_end

    ids = [video_id_for(p.as_uri()) for p in videos]
    docs = os_client.mget(index=index_names.videos, body={"ids": ids})["docs"]
    assert all(d["found"] and d["_source"]["status"] == "complete" for d in docs)
    assert {d["_source"]["run_id"] for d in docs} == expected.keys()
    frames = sum(d["_source"]["frame_count"] for d in docs)
    assert len(logged) == frames >= VIDEOS and max(Counter(logged).values()) == 1

    # the same day scanned again: everything is recognised as analysed, nothing starts
    assert again.scan_run["state"] == "success"
    assert again.summary["already_analysed"] == VIDEOS and again.summary["new"] == 0
    assert again.analysis_runs == [] and logged_after_again == logged
