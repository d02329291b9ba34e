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
from contextlib import ExitStack
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
# Under `pytest -n` (make test), each module is a unit of work for one worker, except these. The
# controller sees only test ids, so they are declared by module; each unit is named for the costly
# session fixture its modules alone may use (collection checks it), so that fixture starts once.
ONE_WORKER_UNITS = {
    # the shared deployment's users. The backfill and demo modules start deployments of their own
    # and stay units of their own: all six in one unit measured no better (27 min 41 s of tests in
    # one CI against 26 min 20 s apart, on a noisy machine), and one worker then holds every wait
    "shared_airflow": (
        "test_archive_load.py",
        "test_reliability_scheduler.py",
        "test_scheduler_e2e.py",
        "test_web_browser.py",
    ),
    # the users of the clean run of the sample
    "clean_sample": ("test_failures.py", "test_runner_truth.py", "test_video_analysis_dag.py"),
}
_controller_node = None  # the OpenSearch node the workers of `pytest -n` share
_shared_airflow = ExitStack()  # the shared deployment, stopped once its last test is done
_last_shared_airflow_test: str | None = None


def work_unit(module: str) -> str:
    """The unit of work a test module belongs to: its `ONE_WORKER_UNITS` name, else its file name."""
    return next((unit for unit, modules in ONE_WORKER_UNITS.items() if module in modules), module)


def pytest_xdist_make_scheduler(config, log):
    """Schedule by `work_unit`, in collection order (`pytest_collection_modifyitems` puts the
    slow units first, so a long one does not start last on one worker)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid.split("::")[0].rsplit("/", 1)[-1])

    config.option.loadscopereorder = False
    return ByWorkUnit(config, log)


def pytest_configure(config):
    """Under `pytest -n`, the controller starts the one OpenSearch node its workers use (each
    worker still has its own index prefix, Airflow home and work root)."""
    global _controller_node
    distributed = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    if distributed and not config.option.collectonly and not os.environ.get("OPENSEARCH_URL"):
        url, _controller_node = start_opensearch()
        os.environ["OPENSEARCH_URL"] = url  # the workers start after this and inherit it


def pytest_collection_modifyitems(config, items):
    """Check `ONE_WORKER_UNITS` against the fixtures; in a worker, put the units with slow tests
    first."""
    for item in items:
        for fixture in ONE_WORKER_UNITS:
            if fixture in item.fixturenames and work_unit(item.path.name) != fixture:
                raise pytest.UsageError(
                    f"{item.path.name} uses {fixture}: add it to ONE_WORKER_UNITS[{fixture!r}]"
                )
    if not hasattr(config, "workerinput"):  # one process: collection order as it is
        return
    unit = {item.nodeid: work_unit(item.path.name) for item in items}
    slow_units = {unit[item.nodeid] for item in items if item.get_closest_marker("slow")}
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(unit[item.nodeid], index)
    items.sort(key=lambda item: (unit[item.nodeid] not in slow_units, first_seen[unit[item.nodeid]]))


def pytest_collection_finish(session):
    global _last_shared_airflow_test
    users = [item.nodeid for item in session.items if "shared_airflow" in item.fixturenames]
    _last_shared_airflow_test = users[-1] if users else None
    if any(item.path.name in NEEDS_FINISH_VIDEO for item in session.items):
        from tests.support.finish import start_in_background

        start_in_background()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the shared deployment after the last test that uses it (its unit's tests run one
    after another), not at the end of the session: idle, its four services still cost CPU."""
    yield
    if item.nodeid == _last_shared_airflow_test:
        _shared_airflow.close()


def pytest_sessionfinish(session, exitstatus):
    global _controller_node
    from tests.support.finish import stop_background

    stop_background()
    if _controller_node is not None:  # stopped before its data goes with the session folder
        from reko.localdev.opensearch import stop_node

        stop_node(_controller_node)
        del os.environ["OPENSEARCH_URL"]
        _controller_node = None
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def start_opensearch():
    """A real OpenSearch 2.19 node from Maven Central jars on a free loopback port: (url, process)."""
    from reko.localdev.opensearch import build_launcher, free_port, start_node, wait_for_health

    build_launcher()
    port = free_port()
    home = _SESSION_DIR / "opensearch"
    proc = start_node(port, home, log_file=_SESSION_DIR / "opensearch.log")
    url = f"http://127.0.0.1:{port}"
    wait_for_health(url, timeout_s=180)
    return url, proc


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """A real OpenSearch node: OPENSEARCH_URL if set (the controller's under `pytest -n`), else
    started for this session."""
    from reko.localdev.airflow_services import opensearch_connection
    from reko.localdev.opensearch import stop_node

    given = os.environ.get("OPENSEARCH_URL")
    url, proc = (given, None) if given else start_opensearch()
    os.environ["AIRFLOW_CONN_OPENSEARCH_DEFAULT"] = opensearch_connection(url)
    yield url
    if proc is not None:
        stop_node(proc)


@pytest.fixture(scope="session")
def shared_airflow(opensearch_url, tmp_path_factory):
    """One real Airflow deployment for every module that can share it (`SharedDeployment.use`),
    started when the first of them runs and stopped after the last (`pytest_runtest_teardown`)."""
    from tests.support.deployment import shared_deployment

    root = tmp_path_factory.mktemp("shared-airflow")
    prefix = f"{os.environ['REKO_INDEX_PREFIX']}-airflow"
    yield _shared_airflow.enter_context(
        shared_deployment(opensearch_url, root, prefix, os.environ["REKO_WORK_URI"])
    )
    _shared_airflow.close()  # when the session ends first (a test of it failed the run, -x)


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
