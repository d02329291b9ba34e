"""The local Airflow deployment of the scheduler tests, with the counting, fault-injecting analyser
(`tests.support.faulty`, the real OCR underneath); the deployment itself is `reko.localdev.deployment`.

Starting one costs 30-80 s, so the modules whose needs allow it share one per test run
(`SharedDeployment`, the session fixture `shared_airflow`): each module takes it with `use()`, which
gives the module the deployment alone while it runs (nothing left running from the module before,
its fault files reset, only its DAGs unpaused, its Variables set and removed again).
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from reko.localdev.airflow_services import AirflowClient, AirflowServices
from reko.localdev.deployment import airflow_deployment as _deployment

FAULTY_ANALYSER = "tests.support.faulty:FaultyTextAnalyser"
# every DAG a sharing module may unpause; all stay paused outside the module that asked for them
SHARED_DAGS = ("video_analysis", "video_clips", "video_archive_scan")
UNFINISHED = ("queued", "running")


@contextmanager
def airflow_deployment(
    opensearch_url: str,
    root: Path,
    index_prefix: str,
    dag_ids: list[str],
    extra_env: dict[str, str] | None = None,
    start_timeout_s: float = 180,
) -> Iterator[AirflowServices]:
    """`reko.localdev.deployment.airflow_deployment` analysing text with the faulty analyser."""
    with _deployment(
        opensearch_url, root, index_prefix, dag_ids, extra_env, start_timeout_s, text_analyser=FAULTY_ANALYSER
    ) as services:
        yield services


@dataclass(frozen=True)
class Faults:
    """The fault injector's files (`tests.support.faulty` reads them on every call)."""

    fail: Path
    kill: Path
    marker: Path
    calls: Path

    @classmethod
    def under(cls, root: Path) -> Faults:
        return cls(root / "fail.json", root / "kill.json", root / "killed.pid", root / "calls.log")

    def env(self) -> dict[str, str]:
        return {
            "REKO_TEST_FAIL_HASHES": str(self.fail),
            "REKO_TEST_KILL_HASHES": str(self.kill),
            "REKO_TEST_KILL_MARKER": str(self.marker),
            "REKO_TEST_CALLS_LOG": str(self.calls),
        }

    def reset(self) -> None:
        """No frame fails or kills, nothing killed yet, no call logged."""
        self.fail.write_text("[]")
        self.kill.write_text("[]")
        self.marker.unlink(missing_ok=True)
        self.calls.write_text("")


@dataclass
class SharedDeployment:
    """One deployment for the modules that allow it, under its own index prefix and the session's
    work root (the page's tests analyse the sample in-process and the api-server serves its frames).

    Settings that are read when a DAG file is parsed or a service starts are the same for every
    module (the archive load's: 8 task processes, daily scan intervals, a 2 s poke); what differs
    per module goes through run conf, the fault files and Variables.
    """

    services: AirflowServices
    opensearch_url: str
    root: Path
    index_prefix: str
    work_uri: str
    faults: Faults
    archive: Path  # the scan DAG's default prefix, empty: a scheduled scan run finds nothing

    @classmethod
    def env_for(cls, root: Path, work_uri: str) -> dict[str, str]:
        from reko.localdev.archive_load import scan_env

        return {
            **scan_env(root / "archive", max_active=8, parallelism=8),
            **Faults.under(root).env(),
            "REKO_WORK_URI": work_uri,
        }

    @contextmanager
    def use(
        self,
        dag_ids: list[str],
        variables: dict[str, str] | None = None,
        own_indices: bool = False,
    ) -> Iterator[AirflowClient]:
        """The deployment for one module: nothing else runs, `dag_ids` unpaused, `variables` set.

        The test process's REKO_INDEX_PREFIX is the deployment's for the duration, so the module
        reads what its runs wrote. `own_indices`: the deployment's indices are deleted first, for
        a module that counts everything in them (the page's hits and videos).
        """
        client = self.services.client()
        self.wait_idle(client, timeout_s=120)  # a module before us left nothing running
        self.faults.reset()
        if own_indices:
            from opensearchpy import OpenSearch

            indices = OpenSearch(hosts=[self.opensearch_url], timeout=60).indices
            indices.delete(index=f"{self.index_prefix}-*", params={"expand_wildcards": "all"})
        for key, value in (variables or {}).items():
            client.call("POST", "/variables", {"key": key, "value": value})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REKO_INDEX_PREFIX", self.index_prefix)
            try:
                for dag_id in dag_ids:
                    client.wait_for_dag(dag_id, timeout_s=180)  # parsed, then unpaused
                yield client
            finally:
                client = self.services.client()  # a fresh token: the module may have run long
                for dag_id in dag_ids:
                    client.call("PATCH", f"/dags/{dag_id}", {"is_paused": True})
                self.end_unfinished(client)
                for key in variables or {}:
                    client.call("DELETE", f"/variables/{quote(key, safe='')}")

    @staticmethod
    def unfinished(client: AirflowClient) -> list[dict]:
        runs = client.every("/dags/~/dagRuns?" + "&".join(f"state={s}" for s in UNFINISHED), "dag_runs")
        return [r for r in runs if r["state"] in UNFINISHED]

    def wait_idle(self, client: AirflowClient, timeout_s: float) -> None:
        """Wait until no run of any DAG is queued or running."""
        deadline = time.monotonic() + timeout_s
        while left := self.unfinished(client):
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs still unfinished after {timeout_s}s: {left}")
            time.sleep(2)

    def end_unfinished(self, client: AirflowClient) -> None:
        """Fail what the module left running (asset-triggered clips of its videos, a test that
        failed half-way), and wait until those runs have stopped, so they cannot reach into the
        next module's runs, calls log or indices."""
        for run in self.unfinished(client):
            path = f"/dags/{run['dag_id']}/dagRuns/{quote(run['dag_run_id'], safe='')}"
            try:
                client.call("PATCH", path, {"state": "failed"})
            except urllib.error.HTTPError:
                pass  # it ended meanwhile
        self.wait_idle(client, timeout_s=120)
        self.wait_no_running_tasks(client, timeout_s=120)

    @staticmethod
    def wait_no_running_tasks(client: AirflowClient, timeout_s: float) -> None:
        """A failed run's task processes are stopped by their next heartbeat: wait for that."""
        deadline = time.monotonic() + timeout_s
        query = "/dags/~/dagRuns/~/taskInstances?state=running&state=queued&limit=1"
        while client.call("GET", query)["total_entries"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"task instances still running after {timeout_s}s")
            time.sleep(2)


@contextmanager
def shared_deployment(
    opensearch_url: str, root: Path, index_prefix: str, work_uri: str
) -> Iterator[SharedDeployment]:
    """Start the shared deployment (every DAG paused until a module asks for it) and stop it after."""
    faults = Faults.under(root)
    faults.reset()
    (root / "archive").mkdir(parents=True, exist_ok=True)
    env = SharedDeployment.env_for(root, work_uri)
    with airflow_deployment(opensearch_url, root, index_prefix, [], env) as services:
        yield SharedDeployment(
            services, opensearch_url, root, index_prefix, work_uri, faults, root / "archive"
        )
