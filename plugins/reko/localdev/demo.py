"""`make demo`: start OpenSearch and Airflow locally, analyse the sample video, print what was found.

The services keep running afterwards (so the UI can be opened); `make stop` ends them. A service
already answering on its port is reused rather than started twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from reko.localdev.airflow_services import ADMIN_USER, AirflowServices

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_DIR = REPO_ROOT / ".data" / "run"
SAMPLE = REPO_ROOT / "include" / "sample" / "race.mp4"
TRUTH = REPO_ROOT / "include" / "sample" / "race.truth.json"
OPENSEARCH_PORT = int(os.environ.get("REKO_OPENSEARCH_PORT", "9200"))
AIRFLOW_PORT = int(os.environ.get("REKO_AIRFLOW_PORT", "8080"))
# Every DAG the README tells a user about: new DAGs are created paused, and a paused DAG's runs
# (a clip request, a manual trigger, the watch-list's asset-triggered runs) stay queued forever.
DEMO_DAGS = ("video_analysis", "video_clips", "video_archive_scan", "video_maintenance")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _start_background(name: str, module: str, *args: str) -> None:
    """Start a foreground CLI of ours detached from this process, with a pid file for `make stop`."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    out = (RUN_DIR / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
    )
    (RUN_DIR / f"{name}.pid").write_text(str(proc.pid))


def _wait(url: str, what: str, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(url):
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not come up in {timeout_s:.0f}s; see {log}")
        time.sleep(2)


def ensure_services() -> AirflowServices:
    opensearch = f"http://127.0.0.1:{OPENSEARCH_PORT}"
    if not _answers(f"{opensearch}/_cluster/health"):
        print(f"Starting OpenSearch on {opensearch} (data in .data/opensearch) ...", flush=True)
        _start_background("opensearch", "reko.localdev.opensearch", "--port", str(OPENSEARCH_PORT))
        _wait(f"{opensearch}/_cluster/health", "OpenSearch", RUN_DIR / "opensearch.log")
    services = AirflowServices(REPO_ROOT / ".airflow", AIRFLOW_PORT)
    if not _answers(f"{services.url}/api/v2/monitor/health"):
        print(f"Starting Airflow on {services.url} (api-server, scheduler, dag-processor, triggerer) ...")
        _start_background("airflow", "reko.localdev.airflow_services", "--port", str(AIRFLOW_PORT))
        _wait(f"{services.url}/api/v2/monitor/health", "Airflow", RUN_DIR / "airflow.log")
    return services


def ready_dags(client: Any) -> None:
    """Wait for every DAG of `DEMO_DAGS` to be parsed, and unpause it.

    The scan's default prefix is created first, so its hourly runs list an empty folder instead of
    failing on a missing one.
    """
    from reko.config import archive_uri

    prefix = urllib.parse.urlparse(archive_uri())
    if prefix.scheme == "file":
        Path(urllib.parse.unquote(prefix.path)).mkdir(parents=True, exist_ok=True)
    for dag_id in DEMO_DAGS:
        client.wait_for_dag(dag_id)


def print_findings(video_id: str) -> None:
    from opensearchpy import OpenSearch

    from reko.index.client import IndexNames

    client = OpenSearch(hosts=[f"http://127.0.0.1:{OPENSEARCH_PORT}"])
    names = IndexNames.current()
    video = client.get(index=names.videos, id=video_id)["_source"]
    hits = client.search(
        index=names.segments,
        body={"size": 1000, "query": {"term": {"video_id": video_id}}, "sort": ["start_ms"]},
    )["hits"]["hits"]
    ranges: dict[str, list[str]] = {}
    for hit in hits:
        seg = hit["_source"]
        ranges.setdefault(seg["value"], []).append(
            f"{seg['start_ms'] / 1000:.0f}-{seg['end_ms'] / 1000:.0f}s"
        )
    truth = json.loads(TRUTH.read_text())
    print(f"\nVideo {video_id}: {video['frame_count']} frames, status {video['status']}, {video['counts']}")
    print("\nBib numbers (found | ground truth):")
    for bib in truth["bibs"]:
        want = ", ".join(f"{s['start_s']:.1f}-{s['end_s']:.1f}s" for s in bib["segments"])
        print(f"  {bib['text']:>6}: {', '.join(ranges.get(bib['text'], ['NOT FOUND'])):<24} | {want}")
    for caption in truth["captions"]:
        words = caption["text"].split()
        seen = {w: ranges.get(w.upper(), ranges.get(w)) for w in words}
        print(
            f"  caption {caption['text']!r}: "
            + ", ".join(f"{w} {r[0] if r else 'not found'}" for w, r in seen.items())
        )


def main() -> None:
    from reko.storage import video_id_for

    services = ensure_services()
    client = services.client()
    ready_dags(client)
    uri = SAMPLE.as_uri()
    run_id = client.trigger("video_analysis", {"video_uri": uri})
    print(f"Triggered video_analysis run {run_id} on {SAMPLE.name}; waiting ...", flush=True)
    started = time.monotonic()
    state = client.wait_for_run("video_analysis", run_id)
    print(f"Run {state} in {time.monotonic() - started:.0f}s")
    if state != "success":
        for ti in client.task_instances("video_analysis", run_id):
            if ti["state"] != "success":
                print(f"  {ti['task_id']}[{ti['map_index']}]: {ti['state']}")
        sys.exit(1)
    print_findings(video_id_for(uri))
    print(
        f"\nOpen the Airflow UI: {services.url}  (user {ADMIN_USER}; password: cat .airflow/passwords.json)"
        f"\nOpenSearch: http://127.0.0.1:{OPENSEARCH_PORT}   Stop everything: make stop"
    )


if __name__ == "__main__":
    main()
