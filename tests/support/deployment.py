"""The local Airflow deployment of the scheduler tests, with the counting, fault-injecting analyser
(`tests.support.faulty`, the real OCR underneath); the deployment itself is `reko.localdev.deployment`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reko.localdev.airflow_services import AirflowServices
from reko.localdev.deployment import airflow_deployment as _deployment

FAULTY_ANALYSER = "tests.support.faulty:FaultyTextAnalyser"


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
