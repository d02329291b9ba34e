"""One local Airflow deployment (api-server, scheduler, dag-processor, triggerer on 127.0.0.1) for
the tests and benchmarks that run reko under the real scheduler.

Every such deployment writes to its own work tree and to the given index prefix; tests plug in their
counting, fault-injecting analyser (`text_analyser`, the real OCR underneath), benchmarks the real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reko.localdev.airflow_services import AirflowServices, opensearch_connection
from reko.localdev.opensearch import free_port


@contextmanager
def airflow_deployment(
    opensearch_url: str,
    root: Path,
    index_prefix: str,
    dag_ids: list[str],
    extra_env: dict[str, str] | None = None,
    start_timeout_s: float = 180,
    text_analyser: str | None = None,
) -> Iterator[AirflowServices]:
    """The four services with `root/work` as the work tree; the `dag_ids` parsed and unpaused.

    DAGs not listed stay paused (new DAGs are created paused), so asset events do not start them.
    `text_analyser` (`package.module:Class`) replaces the local text analyser (REKO_LOCAL_TEXT_ANALYSER).
    """
    env = {
        "AIRFLOW_CONN_OPENSEARCH_DEFAULT": opensearch_connection(opensearch_url),
        "REKO_WORK_URI": (root / "work").as_uri(),
        "REKO_INDEX_PREFIX": index_prefix,
        **({"REKO_LOCAL_TEXT_ANALYSER": text_analyser} if text_analyser else {}),
        **(extra_env or {}),
    }
    services = AirflowServices(root / "airflow", free_port(), extra_env=env)
    services.start(timeout_s=start_timeout_s)
    try:
        client = services.client()
        for dag_id in dag_ids:
            client.wait_for_dag(dag_id, timeout_s=start_timeout_s)
        yield services
    finally:
        services.stop()
