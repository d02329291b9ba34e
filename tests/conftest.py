"""Shared fixtures: a real OpenSearch node, an isolated Airflow home, and the sample video.

The environment is set before anything imports Airflow, so every test (and every Airflow
component a test starts) uses a throw-away AIRFLOW_HOME, work root and index prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="reko-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "REKO_WORK_URI": (_SESSION_DIR / "work").as_uri(),
        "REKO_INDEX_PREFIX": f"reko-test-{uuid.uuid4().hex[:8]}",
        "REKO_BACKEND": "local",
    }
)

# the Celery soak (`make soak-celery`) starts Postgres, Redis and two workers: never in `make test`
collect_ignore = [] if os.environ.get("REKO_SOAK_CELERY") == "1" else ["test_archive_celery.py"]

SAMPLE_VIDEO = REPO / "include" / "sample" / "race.mp4"
SAMPLE_TRUTH = REPO / "include" / "sample" / "race.truth.json"


# the modules that need the generated finish-line video (tests/support/finish.py)
NEEDS_FINISH_VIDEO = ("test_runner_passes.py", "test_text_detector.py")


def pytest_collection_finish(session):
    if any(item.path.name in NEEDS_FINISH_VIDEO for item in session.items):
        from tests.support.finish import start_in_background

        start_in_background()


def pytest_sessionfinish(session, exitstatus):
    from tests.support.finish import stop_background

    stop_background()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """A real OpenSearch 2.19 node started from Maven Central jars (or OPENSEARCH_URL if set)."""
    from reko.localdev.airflow_services import opensearch_connection
    from reko.localdev.opensearch import build_launcher, free_port, start_node, wait_for_health

    url = os.environ.get("OPENSEARCH_URL")
    proc = None
    if not url:
        build_launcher()
        port = free_port()
        home = _SESSION_DIR / "opensearch"
        proc = start_node(port, home, log_file=_SESSION_DIR / "opensearch.log")
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, timeout_s=180)
    os.environ["AIRFLOW_CONN_OPENSEARCH_DEFAULT"] = opensearch_connection(url)
    yield url
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def shared_airflow(opensearch_url, tmp_path_factory):
    """One real Airflow deployment for every module that can share it (`SharedDeployment.use`),
    started when the first of them runs and stopped at the end of the session."""
    from tests.support.deployment import shared_deployment

    root = tmp_path_factory.mktemp("shared-airflow")
    prefix = f"{os.environ['REKO_INDEX_PREFIX']}-airflow"
    with shared_deployment(opensearch_url, root, prefix, os.environ["REKO_WORK_URI"]) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def os_client(opensearch_url):
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[opensearch_url], timeout=60)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME, with reko's pool."""
    from reko.localdev.airflow_services import create_pool

    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True
    )
    create_pool(dict(os.environ))
    return home


@pytest.fixture(scope="session")
def sample_truth() -> dict:
    return json.loads(SAMPLE_TRUTH.read_text())


@pytest.fixture
def index_names():
    from reko.index.client import IndexNames

    return IndexNames.current()


@pytest.fixture(scope="session")
def analysis_dag(airflow_db, opensearch_url):
    """The `video_analysis` DAG as the DAG processor parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]


@pytest.fixture(scope="session")
def clean_sample(analysis_dag, os_client) -> dict:
    """The bundled sample analysed once with no fault (dag.test(), default settings), and its
    index as it then stood: the reference the modules that check a faulted or repeated run compare
    against, instead of each analysing a clean copy of its own (35-45 s a run here)."""
    from airflow.utils.state import DagRunState

    from reko.index.client import IndexNames
    from reko.storage import video_id_for

    dag_run = analysis_dag.test(run_conf={"video_uri": SAMPLE_VIDEO.as_uri()})
    assert dag_run.state == DagRunState.SUCCESS, f"video_analysis ended {dag_run.state}"
    names = IndexNames.current()
    video_id = video_id_for(SAMPLE_VIDEO.as_uri())
    return {
        "video_id": video_id,
        "detections": snapshot(os_client, names.detections, video_id),
        "segments": snapshot(os_client, names.segments, video_id),
        "passes": snapshot(os_client, names.passes, video_id),
        "video": os_client.get(index=names.videos, id=video_id)["_source"],
    }


def snapshot(client, index: str, video_id: str) -> dict[str, dict]:
    """Every document of one video in `index`, by id (none when the index does not exist)."""
    if not client.indices.exists(index=index):
        return {}
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"size": 10000, "query": {"term": {"video_id": video_id}}})
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
