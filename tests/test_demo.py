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
