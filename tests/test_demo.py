"""`make demo` leaves every DAG the README tells a user about ready to run (none left paused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reko.localdev import demo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dag_ids(airflow_db) -> set[str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return set(bag.dags)


def test_the_demo_unpauses_every_dag_of_the_package(dag_ids):
    assert set(demo.DEMO_DAGS) == dag_ids


class RecordingClient:
    """Stands in for the REST client: records which DAGs were unpaused."""

    def __init__(self) -> None:
        self.unpaused: list[str] = []

    def wait_for_dag(self, dag_id: str) -> None:
        self.unpaused.append(dag_id)


def test_ready_dags_unpauses_the_clip_dag_and_creates_the_scan_prefix(tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    monkeypatch.setenv("REKO_ARCHIVE_URI", archive.as_uri())
    client = RecordingClient()
    demo.ready_dags(client)
    assert "video_clips" in client.unpaused and client.unpaused == list(demo.DEMO_DAGS)
    assert archive.is_dir()


@pytest.mark.slow
def test_after_the_demos_set_up_a_manual_clip_run_starts_and_ends(opensearch_url, tmp_path, monkeypatch):
    """Under the real scheduler: the DAGs the demo readied answer a manual run (a paused DAG's run
    stays queued forever). No video has segments in this fresh index: the run ends successfully."""
    import os

    from tests.support.deployment import airflow_deployment

    monkeypatch.setenv("REKO_ARCHIVE_URI", (tmp_path / "archive").as_uri())
    env = {"REKO_ARCHIVE_URI": (tmp_path / "archive").as_uri()}
    prefix = os.environ["REKO_INDEX_PREFIX"] + "-demo"
    with airflow_deployment(opensearch_url, tmp_path, prefix, [], env) as services:
        client = services.client()
        demo.ready_dags(client)
        paused = {d: client.call("GET", f"/dags/{d}")["is_paused"] for d in demo.DEMO_DAGS}
        assert paused == dict.fromkeys(demo.DEMO_DAGS, False)
        run_id = client.trigger("video_clips", {"subject": "1042"})
        assert client.wait_for_run("video_clips", run_id, timeout_s=300) == "success"
