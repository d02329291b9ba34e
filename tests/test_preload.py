"""The scheduler of a LocalExecutor imports what reko's tasks need before it forks its workers;
no other service does. Each test runs a fresh interpreter, as a service starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["numpy", "cv2", "onnxruntime", "tesserocr", "opensearchpy", "reko.pipeline"]

# what Airflow does as a service starts: its Job() calls the plugins' `on_starting` listeners
_STARTS = """
import json, os, sys
sys.path.insert(0, "plugins")
from airflow.jobs.job import Job
from reko import listeners
starts, heavy, loaded = json.loads(sys.argv[1]), json.loads(sys.argv[2]), {}
for name, argv, env in starts:
    sys.argv = argv
    os.environ.update(env)
    listeners.on_starting(component=Job())
    loaded[name] = [m for m in heavy if m in sys.modules]
print(json.dumps(loaded))
"""


def _loaded_after_starts(*starts: tuple[str, list[str], dict[str, str]]) -> dict[str, list[str]]:
    """The heavy modules loaded after each start in turn (in one interpreter)."""
    out = subprocess.run(
        [sys.executable, "-c", _STARTS, json.dumps(starts), json.dumps(HEAVY)],
        cwd=REPO,
        env={**os.environ, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "REKO_PRELOAD_TASK_MODULES": "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_only_a_local_executor_scheduler_preloads_the_task_modules():
    loaded = _loaded_after_starts(
        ("triggerer", ["airflow", "triggerer"], {}),
        ("dag-processor", ["airflow", "dag-processor"], {}),
        ("api-server", ["airflow", "api-server"], {}),
        ("switched off", ["airflow", "scheduler"], {"REKO_PRELOAD_TASK_MODULES": "false"}),
        (
            "celery",
            ["airflow", "scheduler"],
            {"REKO_PRELOAD_TASK_MODULES": "1", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"},
        ),
        ("local", ["airflow", "scheduler"], {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}),
    )
    assert loaded == {
        "triggerer": [],
        "dag-processor": [],
        "api-server": [],
        "switched off": [],
        "celery": [],  # its task processes are forked by the workers, elsewhere
        "local": HEAVY,
    }


def test_every_listed_module_imports():
    """A name in `BackendTraits.task_modules` that no longer imports would only log a warning at
    the scheduler's start: here it fails."""
    code = (
        "import json, sys; sys.path.insert(0, 'plugins'); from reko.preload import preload_task_modules;"
        " r = [preload_task_modules(b) for b in ('local', 'aws')];"
        " print(json.dumps([r, 'aiohttp' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    failed, aiohttp_loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert failed == [{}, {}]
    assert not aiohttp_loaded  # opensearch-py without its asyncio half, as a task imports it
