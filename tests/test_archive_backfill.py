"""`airflow backfill create` over an archive, under the real scheduler: every good video analysed
exactly once, corrupt files reported, the bound on analysis runs at once held, and a second
backfill (re-running completed scans) a no-op."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reko.archive import ScanSettings, analysis_run_id
from reko.storage import fingerprint_of, video_id_for
from tests.support.deployment import airflow_deployment
from tests.support.short_videos import (
    empty_file,
    make_video,
    not_a_video,
    set_mtime,
    truncated_copy,
)

pytestmark = pytest.mark.slow
SCAN_DAG_ID = "video_archive_scan"
ANALYSIS_DAG_ID = "video_analysis"
MAX_IN_FLIGHT = 2
DAY = timedelta(days=1)
DAY1 = datetime(2025, 6, 1, tzinfo=UTC)
# name -> (bib number or corrupt kind, mtime); three videos on one day so the in-flight bound bites
GOOD = {
    "day1/a.mp4": ("1042", DAY1 + timedelta(hours=1)),
    "day1/b.mp4": ("3318", DAY1 + timedelta(hours=5)),
    "day1/c.mp4": ("2718", DAY1 + timedelta(hours=23, minutes=59)),
    "day2/d.mp4": ("1618", DAY1 + DAY),  # exactly at an interval start: belongs to day 2
    "day3/e.mp4": ("4669", DAY1 + 2 * DAY + timedelta(hours=12)),
    "day3/f.mp4": ("1414", DAY1 + 2 * DAY + timedelta(hours=13)),
}
CORRUPT = {
    "day1/empty.mp4": ("empty", DAY1 + timedelta(hours=2)),
    "day2/list.mp4": ("text", DAY1 + DAY + timedelta(hours=3)),
    "day3/cut.mp4": ("truncated", DAY1 + 2 * DAY + timedelta(hours=4)),
}


@pytest.fixture(scope="module")
def deployment(opensearch_url, tmp_path_factory):
    """The four Airflow services with daily scan intervals, a bound of 2 and an analyser that counts."""
    root = tmp_path_factory.mktemp("backfill")
    archive = make_archive(root / "archive")
    calls = root / "calls.log"
    calls.write_text("")
    env = {
        "REKO_TEST_CALLS_LOG": str(calls),
        "REKO_ARCHIVE_URI": archive.as_uri(),
        "REKO_SCAN_SCHEDULE": "0 0 * * *",
        "REKO_SCAN_START_DATE": "2025-01-01",
        "REKO_MAX_ACTIVE_ANALYSES": str(MAX_IN_FLIGHT),
        "REKO_SCAN_POKE_S": "2",
    }
    dags = [ANALYSIS_DAG_ID, SCAN_DAG_ID]  # video_clips stays paused: not what this test is about
    with airflow_deployment(opensearch_url, root, os.environ["REKO_INDEX_PREFIX"], dags, env) as services:
        yield services, services.client(), archive, calls


def make_archive(root: Path) -> Path:
    for name, (bib, when) in GOOD.items():
        set_mtime(make_video(root / name, bib), when)
    good = root / "day1" / "a.mp4"
    makers = {
        "empty": empty_file,
        "text": not_a_video,
        "truncated": lambda p: truncated_copy(good, p, fraction=0.4),
    }
    for name, (kind, when) in CORRUPT.items():
        set_mtime(makers[kind](root / name), when)
    set_mtime(not_a_video(root / "day2" / "README.txt"), DAY1 + DAY)  # not a video extension: ignored
    return root


def backfill(services, client, *extra: str) -> None:
    """`airflow backfill create` over the three days, as an operator would type it."""
    cmd = [str(Path(sys.executable).parent / "airflow"), "backfill", "create", "--dag-id", SCAN_DAG_ID]
    cmd += ["--from-date", DAY1.date().isoformat(), "--to-date", (DAY1 + 2 * DAY).date().isoformat(), *extra]
    before = len(client.call("GET", f"/backfills?dag_id={SCAN_DAG_ID}")["backfills"])
    # On SQLite a writer that read first is refused at once ("database is locked", no busy wait) when
    # another process writes, so every writer but the API server is off while the CLI writes the
    # backfill (production runs Postgres or MySQL). No task runs at these moments (before and after
    # the work). With only the scheduler off, CI saw a backfill created and its clearing refused.
    with services.without("scheduler", "dag-processor", "triggerer"):
        for _ in range(5):
            done = subprocess.run(cmd, env=services.env, capture_output=True, text=True, timeout=180)
            created = len(client.call("GET", f"/backfills?dag_id={SCAN_DAG_ID}")["backfills"]) > before
            if done.returncode == 0 or created or "database is locked" not in done.stderr:
                break
            time.sleep(3)
    assert done.returncode == 0, done.stderr[-2000:]


def wait_for_scans(client, since: datetime, timeout_s: float = 600) -> list[dict]:
    """Wait until the three days' scan runs, queued by a backfill made at `since` or later, have ended.

    Not the backfill's own `completed_at`: the scheduler sets it on a fixed 30-s timer
    (`_mark_backfills_complete`), up to 30 s after its last run ended: the test checks the first
    backfill's results meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = scan_runs(client)
        queued = [r for r in runs if r["queued_at"] and datetime.fromisoformat(r["queued_at"]) >= since]
        if len(queued) == len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(2)
    backfills = client.call("GET", f"/backfills?dag_id={SCAN_DAG_ID}")["backfills"]
    raise TimeoutError(f"scans not ended after {timeout_s}s: {backfills}; {unfinished_scans(client)}")


def wait_for_backfill_completed(client, timeout_s: float = 120) -> None:
    """Wait for the scheduler to mark every backfill complete: Airflow refuses a second backfill of a
    DAG while one is running (`AlreadyRunningBackfill`), and marks them on its 30-s timer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfills = client.call("GET", f"/backfills?dag_id={SCAN_DAG_ID}")["backfills"]
        if all(b["completed_at"] for b in backfills):
            return
        time.sleep(1)
    raise TimeoutError(f"backfills not marked complete after {timeout_s}s: {backfills}")


def unfinished_scans(client) -> dict[str, tuple]:
    """What a stuck backfill waits on: each unfinished scan run's state and its unfinished tasks."""
    stuck = {}
    for run in scan_runs(client):
        tis = client.task_instances(SCAN_DAG_ID, run["dag_run_id"])
        pending = [
            (ti["task_id"], ti["map_index"], ti["state"])
            for ti in tis
            if ti["state"] not in ("success", "skipped")
        ]
        if run["state"] != "success" or pending:
            stuck[run["dag_run_id"]] = (run["state"], pending)
    return stuck


class InFlightSampler(threading.Thread):
    """Samples how many video_analysis runs are running (more may wait queued for a slot)."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.samples, self.stop = client, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            query = f"/dags/{ANALYSIS_DAG_ID}/dagRuns?state=running&limit=1"
            self.samples.append(self.client.call("GET", query)["total_entries"])
            time.sleep(0.5)


def analysis_runs(client) -> dict[str, dict]:
    runs = client.every(f"/dags/{ANALYSIS_DAG_ID}/dagRuns", "dag_runs")
    return {r["dag_run_id"]: r for r in runs}


def scan_runs(client) -> list[dict]:
    runs = client.every(f"/dags/{SCAN_DAG_ID}/dagRuns?run_type=backfill", "dag_runs")
    return sorted(runs, key=lambda r: r["logical_date"])


def summary(client, run_id: str) -> dict:
    path = f"/dags/{SCAN_DAG_ID}/dagRuns/{run_id}/taskInstances/summarise_scan/xcomEntries/return_value"
    value = client.call("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_backfilling_an_archive_analyses_every_good_video_exactly_once(deployment, os_client, index_names):
    services, client, archive, calls = deployment
    sampler = InFlightSampler(client)
    sampler.start()
    started, since = time.monotonic(), datetime.now(UTC)
    try:
        backfill(services, client, "--max-active-runs", "3")
        wait_for_scans(client, since)
    finally:
        sampler.stop.set()
        sampler.join()
    first_pass_s = time.monotonic() - started

    scans = scan_runs(client)
    assert [r["logical_date"][:10] for r in scans] == ["2025-06-01", "2025-06-02", "2025-06-03"]
    assert {r["state"] for r in scans} == {"success"}
    summaries = {r["logical_date"][:10]: summary(client, r["dag_run_id"]) for r in scans}
    assert [s["analysed"] for s in summaries.values()] == [3, 1, 2]
    rejected = {
        uri.rsplit("/", 2)[-2] + "/" + uri.rsplit("/", 1)[-1]: why
        for s in summaries.values()
        for uri, why in s["rejected"].items()
    }
    assert sorted(rejected) == sorted(CORRUPT)
    assert "empty (0 bytes)" in rejected["day1/empty.mp4"] and "truncated" in rejected["day3/cut.mp4"]
    assert summaries["2025-06-02"]["ignored_extension"] == 1
    mapped = [ti for ti in client.task_instances(SCAN_DAG_ID, scans[0]["dag_run_id"]) if ti["map_index"] >= 0]
    assert sorted(ti["rendered_map_index"] for ti in mapped) == sorted(
        (archive / name).as_uri() for name in GOOD if name.startswith("day1/")
    )

    # every good video: one run under its fixed id, one complete document, each frame analysed once
    settings = ScanSettings("local", 1.0, ["text"], 50.0)
    runs = analysis_runs(client)
    frames = 0
    for name in GOOD:
        path = archive / name
        uri = path.as_uri()
        stat = path.stat()
        run_id = analysis_run_id(
            video_id_for(uri), settings.key, fingerprint_of({"size": stat.st_size, "mtime": stat.st_mtime})
        )
        assert runs[run_id]["state"] == "success" and runs[run_id]["run_type"] == "operator_triggered"
        doc = os_client.get(index=index_names.videos, id=video_id_for(uri))["_source"]
        assert doc["status"] == "complete" and doc["run_id"] == run_id and doc["settings_key"] == settings.key
        frames += doc["frame_count"]
    assert len(runs) == len(GOOD)
    logged = calls.read_text().split()
    assert len(logged) == frames >= 2 * len(GOOD) and max(Counter(logged).values()) == 1

    # the bound: never more than MAX_IN_FLIGHT analysis runs at once (3 were ready on day 1)
    print(
        f"first backfill {first_pass_s:.0f}s; in-flight samples: max {max(sampler.samples)},"
        f" {len(sampler.samples)} samples"
    )
    assert 1 <= max(sampler.samples) <= MAX_IN_FLIGHT

    # the same backfill again, re-running the finished scans: nothing is analysed a second time
    wait_for_backfill_completed(client)
    since = datetime.now(UTC)
    backfill(services, client, "--reprocess-behavior", "completed")
    wait_for_scans(client, since)
    assert len(client.call("GET", f"/backfills?dag_id={SCAN_DAG_ID}")["backfills"]) == 2
    assert analysis_runs(client).keys() == runs.keys()
    assert calls.read_text().split() == logged
    scans = scan_runs(client)
    assert {r["state"] for r in scans} == {"success"} and len(scans) == 3
    again = [summary(client, r["dag_run_id"]) for r in scans]
    assert [s["already_analysed"] for s in again] == [3, 1, 2]
    assert sum(s["triggered"] for s in again) == 0
    assert sorted(len(s["rejected"]) for s in again) == [1, 1, 1]
