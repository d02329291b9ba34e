"""docker-compose.yaml is valid and keeps its promises (no Docker engine needed).

`docker compose config` validates and resolves the file without talking to an engine; the
resolved JSON is then checked for what the issue asks: the four Airflow 3.3.2 components with
one shared JWT secret and execution API URL, Postgres, OpenSearch 2.19 and Dashboards, ports
on 127.0.0.1 only, the repo's folders mounted, and secrets that come from the environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.compose
REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "include" / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"

AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
# Every service built from the Airflow image (the one-shot init and the debug CLI included).
AIRFLOW_IMAGE_SERVICES = (*AIRFLOW_COMMANDS, "airflow-init", "airflow-cli")
SHARED_SETTINGS = (
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
)
# Variables the file interpolates; the caller's values must not leak into what is checked.
OVERRIDABLE = re.compile(r"^(REKO_|AIRFLOW_UID$|COMPOSE_|DOCKER_)")


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the `docker` client binary is not installed (no engine is needed, only the client)")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and re.search(r"version v?2\.", probe.stdout):
            return [standalone]
    pytest.fail(
        "`docker` is installed but `docker compose` is not (the Compose v2 CLI plugin is missing: "
        "install Debian's/Docker's docker-compose-plugin or put a docker-compose v2 binary in "
        f"~/.docker/cli-plugins/): {probe.stderr.strip() or probe.stdout.strip()}"
    )


def _run_compose(
    *args: str, env: dict[str, str] | None = None, profiles: tuple[str, ...] = ("debug",)
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not OVERRIDABLE.match(k)}
    cmd = [
        *_compose_command(),
        "--project-directory",
        str(REPO),
        "-f",
        str(COMPOSE_FILE),
        # .env.example holds only comments: every variable resolves to its documented default,
        # whatever a developer's own .env says.
        "--env-file",
        str(ENV_EXAMPLE),
        *(flag for profile in profiles for flag in ("--profile", profile)),
        *args,
    ]
    result = subprocess.run(
        cmd, cwd=REPO, env={**clean, **(env or {})}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr}\n{result.stdout}"
    return result


def _config(env: dict[str, str] | None = None, profiles: tuple[str, ...] = ("debug",)) -> dict:
    return json.loads(_run_compose("config", "--format", "json", env=env, profiles=profiles).stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return _config()


@pytest.fixture(scope="module")
def services(config: dict) -> dict[str, dict]:
    return config["services"]


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else list(command)


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_every_make_target_running_these_tests_installs_the_compose_plugin(target):
    """On a fresh clone `docker compose` exists only once `compose-plugin` has run (it builds it)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, check=True
    ).stdout
    assert "install-compose-plugin.sh" in dry_run, dry_run
    assert dry_run.index("install-compose-plugin.sh") < dry_run.index("-m pytest")


def test_compose_config_is_valid():
    result = _run_compose("config", "-q")
    assert result.stdout == ""


def test_all_services_exist(services):
    expected = {
        *AIRFLOW_IMAGE_SERVICES,
        "postgres",
        "opensearch",
        "opensearch-dashboards",
        "dashboards-import",
    }
    assert expected <= set(services), sorted(expected - set(services))


def test_published_ports_bind_loopback_only(services):
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"
            published[name] = int(port["published"])
    assert published == {"airflow-apiserver": 8080, "opensearch": 9200, "opensearch-dashboards": 5601}


def test_airflow_components_share_settings(services):
    for setting in SHARED_SETTINGS:
        values = {name: services[name]["environment"].get(setting) for name in AIRFLOW_IMAGE_SERVICES}
        assert len(set(values.values())) == 1, f"{setting} differs between services: {values}"
    env = services["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__API__SECRET_KEY"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]


def test_dev_default_secrets_are_marked_and_overridable(services):
    env = services["airflow-apiserver"]["environment"]
    assert "local-dev" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert "local-dev" in env["AIRFLOW__API__SECRET_KEY"]

    overrides = {
        "REKO_JWT_SECRET": "jwt-from-env",
        "REKO_API_SECRET_KEY": "key-from-env",
        "REKO_FERNET_KEY": "fernet-from-env",
        "REKO_POSTGRES_PASSWORD": "pg-from-env",
        "REKO_ADMIN_PASSWORD": "admin-from-env",
    }
    resolved = _config(env=overrides)["services"]
    for name in AIRFLOW_IMAGE_SERVICES:
        env = resolved[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-env", name
        assert env["AIRFLOW__API__SECRET_KEY"] == "key-from-env", name
        assert env["AIRFLOW__CORE__FERNET_KEY"] == "fernet-from-env", name
        assert ":pg-from-env@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
    assert resolved["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-from-env"
    assert resolved["airflow-init"]["environment"]["REKO_ADMIN_PASSWORD"] == "admin-from-env"


def test_airflow_services_run_their_components(services):
    for name, command in AIRFLOW_COMMANDS.items():
        assert _command(services[name]) == [command], name
    init = services["airflow-init"]
    script = " ".join(_command(init))
    assert "airflow db migrate" in script
    assert "mkdir" in script
    assert init.get("restart", "no") == "no"
    for name in AIRFLOW_COMMANDS:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_no_service_runs_airflow_standalone(services):
    for name, service in services.items():
        words = " ".join([*_command(service), *(service.get("entrypoint") or [])])
        assert "standalone" not in words, name


def test_repo_folders_are_mounted(services):
    wanted = {
        str(REPO / "dags"): "/opt/airflow/dags",
        str(REPO / "plugins"): "/opt/airflow/plugins",
        str(REPO / "include"): "/opt/airflow/include",
    }
    for name in AIRFLOW_IMAGE_SERVICES:
        binds = {v["source"]: v["target"] for v in services[name]["volumes"] if v["type"] == "bind"}
        for source, target in wanted.items():
            assert binds.get(source) == target, f"{name} does not mount {source} at {target}"
        work = {v["target"] for v in services[name]["volumes"]}
        assert "/opt/airflow/work" in work, name


def test_reko_environment(services):
    for name in AIRFLOW_IMAGE_SERVICES:
        env = services[name]["environment"]
        assert env["REKO_BACKEND"] == "local"
        assert env["REKO_INDEX_PREFIX"] == "reko"
        assert env["REKO_WORK_URI"] == "file:///opt/airflow/work"
        assert "/opt/airflow" in env["PYTHONPATH"].split(":")
        conn = json.loads(env["AIRFLOW_CONN_OPENSEARCH_DEFAULT"])
        assert conn["conn_type"] == "opensearch"
        assert (conn["host"], int(conn["port"])) == ("opensearch", 9200)
        assert conn["extra"]["scheme"] == "http"


def test_images_and_dockerfile(services):
    for name in AIRFLOW_IMAGE_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == REPO, name
        assert Path(build["context"], build["dockerfile"]) == DOCKERFILE, name
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in services[name]["environment"], name
    assert services["postgres"]["image"] == "postgres:16"

    opensearch = services["opensearch"]["image"]
    dashboards = services["opensearch-dashboards"]["image"]
    assert re.fullmatch(r"opensearchproject/opensearch:2\.19\.\d+", opensearch)
    assert re.fullmatch(r"opensearchproject/opensearch-dashboards:2\.19\.\d+", dashboards)
    assert opensearch.rsplit(":", 1)[1] == dashboards.rsplit(":", 1)[1]

    dockerfile = DOCKERFILE.read_text()
    from_lines = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert from_lines == ["apache/airflow:3.3.2-python3.11"]
    assert re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*tesseract-ocr-kor", dockerfile)
    assert "ffmpeg" in dockerfile
    assert "-r /requirements.txt" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users[-1] == "airflow", "the image must drop back to the airflow user"


def test_opensearch_and_dashboards(services):
    env = services["opensearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert env["DISABLE_SECURITY_PLUGIN"] == "true"
    assert env["DISABLE_INSTALL_DEMO_CONFIG"] == "true"
    assert "_cluster/health" in " ".join(services["opensearch"]["healthcheck"]["test"])
    assert services["opensearch"]["ulimits"]["memlock"] == {"soft": -1, "hard": -1}

    env = services["opensearch-dashboards"]["environment"]
    assert env["DISABLE_SECURITY_DASHBOARDS_PLUGIN"] == "true"
    assert json.loads(env["OPENSEARCH_HOSTS"]) == ["http://opensearch:9200"]

    importer = services["dashboards-import"]
    assert importer["image"].startswith("curlimages/curl:")
    assert any(v["source"] == str(REPO / "include") for v in importer["volumes"])
    script = REPO / "include" / "docker" / "dashboards-import.sh"
    text = script.read_text()
    assert "/api/saved_objects/_import?overwrite=true" in text
    assert "osd-xsrf: true" in text


def test_dashboards_import_is_a_no_op_without_saved_objects(tmp_path):
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no POSIX sh")
    script = REPO / "include" / "docker" / "dashboards-import.sh"
    for folder in (tmp_path / "missing", tmp_path):
        result = subprocess.run(
            [sh, str(script)],
            env={**os.environ, "DASHBOARDS_DIR": str(folder), "DASHBOARDS_URL": "http://127.0.0.1:9"},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert "nothing to import" in result.stdout


def test_celery_profile_runs_the_same_services_with_workers_and_a_broker(services):
    """`--profile celery` with REKO_EXECUTOR=CeleryExecutor: Redis and workers join, nothing else changes."""
    assert "redis" not in services and "airflow-worker" not in services  # not without the profile
    celery = _config(env={"REKO_EXECUTOR": "CeleryExecutor"}, profiles=("celery",))["services"]
    components = (*AIRFLOW_COMMANDS, "airflow-worker")
    for setting in (*SHARED_SETTINGS, "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL"):
        values = {name: celery[name]["environment"].get(setting) for name in components}
        assert len(set(values.values())) == 1, f"{setting} differs between services: {values}"
    env = celery["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:local-dev-only-redis@redis:6379/")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["REKO_REKOGNITION_LIMITER"] == "task"  # workers do not share the host limiter's file
    assert "REKO_REKOGNITION_LIMITER" not in celery["airflow-scheduler"]["environment"]
    worker = celery["airflow-worker"]
    assert _command(worker) == ["celery", "worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    redis = celery["redis"]
    assert "ports" not in redis and "ports" not in worker  # reached inside the compose network only
    command = _command(redis)
    assert command[command.index("--save") + 1] == "" and "--requirepass" in command
    assert redis["environment"]["REDISCLI_AUTH"] == command[command.index("--requirepass") + 1]
