"""Soak: the same DAGs on Airflow's distributed engine (`make soak-celery`; never in `make test`).

CeleryExecutor with Debian's redis-server as the broker and PostgreSQL as the metadata DB, and two
workers that share nothing but S3: the archive, the work root and the task logs are s3:// on moto;
each worker has its own AIRFLOW_HOME, temp folder and calls log. One scan of the archive must start
one analysis run per video, every run green, one complete video document each, every frame
analysed once in all, both workers running tasks; a second scan must start nothing.

Collected only with REKO_SOAK_CELERY=1 (tests/conftest.py); REKO_CELERY_VIDEOS sets the size (12).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reko.localdev.archive_load import (
    ANALYSIS_DAG_ID,
    SCAN_DAG_ID,
    make_archive,
    run_scan,
    scan_env,
    upload_archive,
)
from reko.localdev.distributed.celery_deployment import (
    ARCHIVE_BUCKET,
    LOGS_BUCKET,
    WORK_BUCKET,
    celery_deployment,
)
from reko.storage import video_id_for

pytestmark = pytest.mark.slow
VIDEOS = int(os.environ.get("REKO_CELERY_VIDEOS", "12"))
WORKERS, CONCURRENCY = 2, 4
MAX_ACTIVE = 8
FAULTY_ANALYSER = "tests.support.faulty:FaultyTextAnalyser"  # the real OCR, counting its calls
REPORT = Path(__file__).parent / "artifacts" / "archive-celery.json"


@pytest.fixture(scope="module")
def scanned(opensearch_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("celery")
    videos = make_archive(root / "archive", VIDEOS)
    logs = {f"worker-{i}": root / f"worker-{i}" / "calls.log" for i in range(1, WORKERS + 1)}
    for log in logs.values():
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
    per_worker = {name: {"REKO_TEST_CALLS_LOG": str(log)} for name, log in logs.items()}
    env = scan_env(f"s3://aws_default@{ARCHIVE_BUCKET}/", MAX_ACTIVE, WORKERS * CONCURRENCY)
    dags = [ANALYSIS_DAG_ID, SCAN_DAG_ID]
    prefix = os.environ["REKO_INDEX_PREFIX"]
    with celery_deployment(
        opensearch_url, root, prefix, dags, WORKERS, CONCURRENCY, env, per_worker, FAULTY_ANALYSER
    ) as deployment:
        uris = upload_archive(deployment.s3, ARCHIVE_BUCKET, videos, root / "archive")
        now = datetime.now(UTC)
        interval = (now - timedelta(hours=1), now + timedelta(hours=1))
        client = deployment.services.client()
        pids = {name: proc.pid for name, proc in deployment.services.procs.items()}
        first = run_scan(client, timeout_s=1800, interval=interval, service_pids=pids)
        calls = {name: log.read_text().split() for name, log in logs.items()}
        again = run_scan(client, timeout_s=600, attempt=2, interval=interval)
        calls_after = {name: log.read_text().split() for name, log in logs.items()}
        report(first)
        ran = next(ti for ti in first.analysis_tis if ti["state"] == "success")
        log = served_log(client, ran)
        pages = deployment.s3.get_paginator("list_objects_v2").paginate(Bucket=WORK_BUCKET)
        work = [o["Key"] for page in pages for o in page.get("Contents", [])]
        limiter = limiter_in_worker(deployment)
    return uris, first, again, calls, calls_after, work, log, limiter


def limiter_in_worker(deployment) -> dict:
    """What the Rekognition limiter is in a worker's environment (run as that worker's tasks are)."""
    import subprocess
    import sys

    code = (
        "import json; from reko.aws.ratelimit import get_limiter;"
        "l = get_limiter('DetectText', 'us-east-1', 5.0);"
        "print(json.dumps({'class': type(l).__name__, 'rate': l.rate}))"
    )
    env = deployment.worker_env(deployment.workers[0])
    plugins = str(Path(__file__).parents[1] / "plugins")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugins, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def report(outcome) -> None:
    timing = outcome.accounting()
    tis = outcome.scan_tis + outcome.analysis_tis
    by_worker = Counter(ti["hostname"] for ti in tis if ti.get("hostname"))
    timing["task_instances_by_worker"] = dict(sorted(by_worker.items()))
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(timing, indent=2))
    print(
        f"\nCelery, {WORKERS} workers x {CONCURRENCY}: {timing['videos']} videos in {timing['wall_s']} s"
        f" ({timing['wall_per_video_s']} s a video);"
        f" task instances by worker {timing['task_instances_by_worker']}; CPU {timing['cpu_s_by_service']}"
    )


def served_log(client, ti: dict) -> str:
    """A task instance's log as the API server serves it (from S3: it has no worker's files)."""
    path = f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
    path += f"/logs/{ti['try_number']}?map_index={ti['map_index']}&full_content=true"
    return json.dumps(client.call("GET", path))


def test_the_archive_goes_through_the_celery_workers_exactly_once(scanned, os_client, index_names):
    uris, first, again, calls, calls_after, *_ = scanned
    assert first.scan_run["state"] == "success"
    assert first.summary["new"] == first.summary["analysed"] == VIDEOS
    assert first.summary["rejected"] == {} and first.summary["overflow"] == 0
    runs_by_video = Counter(r["conf"]["video_uri"] for r in first.analysis_runs)
    assert runs_by_video == Counter(uris), "one analysis run per video, none twice"
    assert {r["state"] for r in first.analysis_runs} == {"success"}
    assert {ti["state"] for ti in first.analysis_tis} <= {"success", "skipped"}

    docs = os_client.mget(index=index_names.videos, body={"ids": [video_id_for(u) for u in uris]})["docs"]
    assert all(d["found"] and d["_source"]["status"] == "complete" for d in docs)
    assert {d["_source"]["run_id"] for d in docs} == {r["dag_run_id"] for r in first.analysis_runs}

    # every frame analysed once, across both workers; each worker analysed some
    frames = sum(d["_source"]["frame_count"] for d in docs)
    logged = [digest for worker_calls in calls.values() for digest in worker_calls]
    assert len(logged) == frames >= VIDEOS and max(Counter(logged).values()) == 1
    assert all(calls.values()), {name: len(c) for name, c in calls.items()}

    hosts = Counter(ti.get("hostname") for ti in first.analysis_tis if ti["state"] == "success")
    assert set(hosts) == {"worker-1", "worker-2"}, hosts

    assert again.scan_run["state"] == "success"
    assert again.summary["already_analysed"] == VIDEOS and again.summary["new"] == 0
    assert again.analysis_runs == [] and calls_after == calls


def test_frames_and_results_are_stored_in_s3(scanned):
    """The work root is s3://: one frame manifest per video, and a stored result per analysed frame."""
    uris, _, _, calls, _, work, *_ = scanned
    assert sum(k.endswith("/frames/manifest.json") for k in work) == len(uris)
    results = [k for k in work if "/results/local/text/" in k and not k.endswith(".error.json")]
    assert len(results) == sum(len(c) for c in calls.values())


def test_task_logs_are_served_from_s3(scanned):
    """The workers' log folders are their own: the API server reads the logs they uploaded to S3."""
    log = scanned[-2]
    assert f"s3://{LOGS_BUCKET}/" in log, log[:2000]


def test_the_workers_limit_rekognition_per_task(scanned):
    """Scope `task` in a worker: a process-local limiter at TPS x headroom / pool slots."""
    limiter = scanned[-1]
    assert limiter == {"class": "LocalRateLimiter", "rate": pytest.approx(5.0 * 0.95 / 4)}
