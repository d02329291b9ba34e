"""Run Airflow's real services for development and tests, bound to 127.0.0.1 only.

Never the all-in-one `standalone` command: it binds 0.0.0.0. Here the api-server listens on
loopback, the log servers are skipped (LocalExecutor logs are local files the api-server reads
directly), and the JWT secret is shared by every component through the environment, as Airflow 3
requires.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
ADMIN_USER = "admin"
SERVICES = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def opensearch_connection(url: str) -> str:
    """Airflow connection JSON for an OpenSearch URL (the provider reads `scheme` from extra)."""
    scheme, rest = url.split("://", 1)
    host, port = rest.rstrip("/").rsplit(":", 1)
    return json.dumps(
        {"conn_type": "opensearch", "host": host, "port": int(port), "extra": {"scheme": scheme}}
    )


def _secret(home: Path, name: str) -> str:
    """A random secret kept in AIRFLOW_HOME, so restarts keep sessions and tokens valid."""
    path = home / f".{name}"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow component of one local deployment."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # analysis tasks are single-threaded and CPU-bound: more at once than cores only contend
            "AIRFLOW__CORE__PARALLELISM": str(max(2, os.cpu_count() or 2)),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__SECRET_KEY": _secret(home, "api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, "jwt_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        }
    )
    env.setdefault("AIRFLOW_CONN_OPENSEARCH_DEFAULT", opensearch_connection("http://127.0.0.1:9200"))
    env.update(extra or {})
    return env


def admin_password(home: Path) -> str:
    """The admin password: generated once and kept in AIRFLOW_HOME (never printed by default)."""
    path = home / "passwords.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}))
        path.chmod(0o600)
    return json.loads(path.read_text())[ADMIN_USER]


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def create_pool(env: dict[str, str]) -> None:
    """The Rekognition pool (`REKO_REKOGNITION_POOL`): tasks in a missing pool are never scheduled."""
    from reko.config import rekognition_pool, rekognition_pool_slots

    cmd = [_airflow_bin(), "pools", "set", rekognition_pool(), str(rekognition_pool_slots())]
    subprocess.run([*cmd, "Tasks calling Amazon Rekognition"], env=env, check=True, capture_output=True)


@dataclass
class AirflowServices:
    """The services of one local deployment (the four of SERVICES unless `commands` says otherwise),
    started and stopped together; `service_env` adds settings of one service only (a worker's home)."""

    home: Path
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=lambda: dict(SERVICES))
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return airflow_env(self.home, self.port, self.extra_env)

    def migrate(self) -> None:
        """Migrate the metadata DB and create the pool the analysis tasks run in."""
        subprocess.run([_airflow_bin(), "db", "migrate"], env=self.env, check=True, capture_output=True)
        create_pool(self.env)

    def start(self, timeout_s: float = 180) -> None:
        admin_password(self.home)
        self.migrate()
        for name in self.commands:
            self.start_service(name)
        self.wait_healthy(timeout_s)

    def start_service(self, name: str) -> None:
        """Start one service, appending to its log in AIRFLOW_HOME/service-logs."""
        logs = self.home / "service-logs"
        logs.mkdir(parents=True, exist_ok=True)
        with self.service_log(name).open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [_airflow_bin(), *self.commands[name]],
                env={**self.env, **self.service_env.get(name, {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def service_log(self, name: str) -> Path:
        return self.home / "service-logs" / f"{name}.log"

    def stop_service(self, name: str, timeout_s: float = 60) -> None:
        """Stop one service (its whole process group) and wait for it to exit."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    @contextmanager
    def without(self, *names: str) -> Iterator[None]:
        """Some services stopped for the duration of the block, then started again."""
        for name in names:
            self.stop_service(name)
        try:
            yield
        finally:
            for name in names:
                self.start_service(name)

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"Airflow {dead} exited; see {self.home / 'service-logs'}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                    health = json.load(resp)
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.url} not healthy after {timeout_s}s")

    def client(self) -> AirflowClient:
        return AirflowClient(self.url, self.token())

    def token(self) -> str:
        """A bearer token for the REST API, from the auth manager's own token endpoint."""
        body = json.dumps({"username": ADMIN_USER, "password": admin_password(self.home)}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["access_token"]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


# what a repeated call is answered when the earlier attempt, whose answer was lost, did it
_DONE_BEFORE = {"DELETE": 404, "POST": 409}


@dataclass
class AirflowClient:
    """The few REST API v2 calls reko's demo, tests and benchmarks make, with a bearer token."""

    url: str
    token: str

    def call(
        self, method: str, path: str, body: dict | None = None, *, repeat_safe: bool | None = None
    ) -> dict:
        """One API call. A call that is safe to repeat is tried again, a few times, when the
        api-server answers 5xx (SQLite busy while the scheduler writes) or does not answer within
        30 s (a loaded machine): both were seen on this shared 2-core machine. Every method but POST
        is; a POST only when the caller says so (`repeat_safe`: a repeat of one that was done is
        refused with 409, as a DELETE's is with 404, and either then counts as done)."""
        attempts = 4 if (method != "POST" if repeat_safe is None else repeat_safe) else 1
        for attempt in range(attempts):
            try:
                return self._call_once(method, path, body)
            except urllib.error.HTTPError as exc:
                if attempt and exc.code == _DONE_BEFORE.get(method):
                    return {}  # the earlier attempt did it before its answer was lost
                if exc.code < 500 or attempt == attempts - 1:
                    raise
            except (TimeoutError, urllib.error.URLError):
                if attempt == attempts - 1:
                    raise
            time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _call_once(self, method: str, path: str, body: dict | None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else {}

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> None:
        """Wait until the DAG processor has parsed the DAG, then unpause it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Start a run under an id chosen here, which makes the POST safe to repeat."""
        run_id = f"manual__{datetime.now(UTC).isoformat()}_{uuid.uuid4().hex[:6]}"
        self.call(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": conf},
            repeat_safe=True,
        )
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 900, poll_s: float = 2) -> str:
        """Poll until the run ends; return its final state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(poll_s)
        raise TimeoutError(f"{dag_id} run {run_id} still running after {timeout_s}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's task instances (`run_id` "~": of every run of the DAG)."""
        return self.every(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def every(self, path: str, key: str, page: int = 100) -> list[dict]:
        """Every item of a list endpoint, page by page: the API caps `limit` (100 by default)."""
        items: list[dict] = []
        sep = "&" if "?" in path else "?"
        while True:
            batch = self.call("GET", f"{path}{sep}limit={page}&offset={len(items)}")[key]
            items += batch
            if len(batch) < page:
                return items


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Airflow's services on 127.0.0.1 for reko.")
    parser.add_argument("--home", type=Path, default=REPO_ROOT / ".airflow")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    services = AirflowServices(args.home.resolve(), args.port)
    services.start()
    print(f"Airflow is up: {services.url}  (user {ADMIN_USER}, password in {args.home / 'passwords.json'})")
    print(f"Logs: {args.home / 'service-logs'}. Ctrl-C stops all four services.")
    stop = lambda *_: (services.stop(), sys.exit(0))  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        time.sleep(5)
        dead = [n for n, p in services.procs.items() if p.poll() is not None]
        if dead:
            services.stop()
            sys.exit(f"Airflow {dead} exited; see {args.home / 'service-logs'}")


if __name__ == "__main__":
    main()
