"""One local CeleryExecutor deployment: scheduler, api-server, dag-processor and triggerer as in
`reko.localdev.deployment`, plus N Celery workers that share nothing with them but the broker,
the metadata DB (through the API server) and S3.

Each worker has its own AIRFLOW_HOME, temp folder and log server port, and names itself
(`worker-1`, ...) both as the Celery node and as the task instances' `hostname`, so the REST API
says which worker ran what. The work root and the archive are s3:// URIs on moto, task logs go to
S3 (remote logging): no file:// path is shared between the machines this stands in for.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reko.localdev.airflow_services import SERVICES, AirflowServices, opensearch_connection
from reko.localdev.distributed.servers import postgres_server, redis_server
from reko.localdev.moto_s3 import CREDENTIALS, moto_s3
from reko.localdev.opensearch import free_port

WORK_BUCKET = "reko-work"
ARCHIVE_BUCKET = "reko-archive"
LOGS_BUCKET = "reko-logs"
HOSTNAME_CALLABLE = "reko.localdev.distributed.celery_deployment.worker_hostname"


def worker_hostname() -> str:
    """The worker's own name (`REKO_WORKER_HOSTNAME`): Airflow's `[core] hostname_callable` on the
    workers, so every task instance records which worker ran it (all share one real host here)."""
    import socket

    return os.environ.get("REKO_WORKER_HOSTNAME") or socket.getfqdn()


def aws_connection(s3_endpoint: str) -> str:
    """The `aws_default` connection JSON pointing at the moto S3 server."""
    extra = {"endpoint_url": s3_endpoint, "region_name": CREDENTIALS["region_name"]}
    login, password = CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"]
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": extra})


def celery_env(db_url: str, broker_url: str, s3_endpoint: str, parallelism: int) -> dict[str, str]:
    """The settings every component shares: executor, DB, broker, S3 storage and remote logs."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",  # no worker hoards queued tasks
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{LOGS_BUCKET}/logs",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
        "REKO_WORK_URI": f"s3://aws_default@{WORK_BUCKET}/work",
        # several hosts: each task takes TPS / pool slots (reko.aws.ratelimit), not a host schedule
        "REKO_REKOGNITION_LIMITER": "task",
    }


@dataclass
class CeleryDeployment:
    services: AirflowServices
    workers: list[str]
    s3: object  # the boto3 S3 client of the moto server
    s3_endpoint: str

    def worker_env(self, worker: str) -> dict[str, str]:
        """The full environment a worker's task processes see."""
        return {**self.services.env, **self.services.service_env[worker]}


def _wait_for_workers(
    services: AirflowServices, broker_url: str, workers: list[str], timeout_s: float
) -> None:
    """Until every worker answers a Celery ping (so no one worker takes all the first tasks)."""
    from celery import Celery

    app = Celery(broker=broker_url)
    deadline = time.monotonic() + timeout_s
    waiting = set(workers)
    while waiting:
        for name in waiting:
            if services.procs[name].poll() is not None:
                raise RuntimeError(f"Celery {name} exited; see {services.service_log(name)}")
        answered = {node.split("@", 1)[0] for reply in app.control.ping(timeout=1) for node in reply}
        waiting -= answered
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"Celery workers {sorted(waiting)} not ready after {timeout_s}s")
    app.close()


@contextmanager
def celery_deployment(
    opensearch_url: str,
    root: Path,
    index_prefix: str,
    dag_ids: list[str],
    workers: int = 2,
    concurrency: int = 4,
    extra_env: dict[str, str] | None = None,
    worker_extra_env: dict[str, dict[str, str]] | None = None,
    text_analyser: str | None = None,
    start_timeout_s: float = 240,
) -> Iterator[CeleryDeployment]:
    """Postgres, Redis, moto S3 and the Airflow services with `workers` Celery workers.

    `worker_extra_env` adds settings to one worker (by name, `worker-1`, ...).
    """
    names = [f"worker-{i}" for i in range(1, workers + 1)]
    with (
        postgres_server() as db_url,
        redis_server() as broker_url,
        moto_s3(WORK_BUCKET, ARCHIVE_BUCKET, LOGS_BUCKET) as (s3_endpoint, s3),
    ):
        env = {
            "AIRFLOW_CONN_OPENSEARCH_DEFAULT": opensearch_connection(opensearch_url),
            "REKO_INDEX_PREFIX": index_prefix,
            **celery_env(db_url, broker_url, s3_endpoint, parallelism=workers * concurrency),
            **({"REKO_LOCAL_TEXT_ANALYSER": text_analyser} if text_analyser else {}),
            **(extra_env or {}),
        }
        commands = dict(SERVICES)
        per_worker: dict[str, dict[str, str]] = {}
        for name in names:
            home = root / name
            (home / "tmp").mkdir(parents=True, exist_ok=True)
            commands[name] = ["celery", "worker", "--celery-hostname", f"{name}@%h"]
            commands[name] += ["--concurrency", str(concurrency), "--skip-serve-logs"]
            per_worker[name] = {
                "AIRFLOW_HOME": str(home),
                "TMPDIR": str(home / "tmp"),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
                "REKO_WORKER_HOSTNAME": name,
                **(worker_extra_env or {}).get(name, {}),
            }
        services = AirflowServices(
            root / "airflow", free_port(), extra_env=env, commands=commands, service_env=per_worker
        )
        services.start(timeout_s=start_timeout_s)
        try:
            _wait_for_workers(services, broker_url, names, start_timeout_s)
            client = services.client()
            for dag_id in dag_ids:
                client.wait_for_dag(dag_id, timeout_s=start_timeout_s)
            yield CeleryDeployment(services, names, s3, s3_endpoint)
        finally:
            services.stop()
