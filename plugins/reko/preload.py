"""What reko's task processes import for their work, imported once by the process they are forked
from, so none of them pays it.

A LocalExecutor's workers are forked from the scheduler when it starts, and each task process is
forked from a worker: whatever the scheduler imported first, every task process has. A short
video's whole run is one task process, and measured (py-spy, 20 one-second videos) about a quarter
of its CPU went on importing numpy, OpenCV, onnxruntime, Shapely, Tesseract's bindings,
opensearch-py and reko's pipeline, which a long-lived process pays once. The models stay per task
process: they are loaded on first use.

Only the scheduler of a LocalExecutor deployment preloads (`reko.listeners.on_starting`), and only
if `REKO_PRELOAD_TASK_MODULES` is on (the default). The other services stay as light as before.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

# what every backend's tasks import: what the DAG files import (each task process parses its
# own), the pipeline, the short path and the index
COMMON_TASK_MODULES = (
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.operators.trigger_dagrun",
    "reko.operators",
    "reko.params",
    "reko.pipeline",
    "reko.short_path",
    "reko.run_summary",
    "reko.index.lease",
    "reko.index.bulk",
    "reko.index.detections",
    "reko.index.segments",
    "reko.index.passes",
    "reko.runners.passes",
)


def task_modules(backend: str) -> tuple[str, ...]:
    """The modules `backend`'s tasks import for their work (`BackendTraits.task_modules`) and
    those every backend's do."""
    from reko.analysis.base import traits

    return (*COMMON_TASK_MODULES, *traits(backend).task_modules)


def forks_task_processes(component: Any) -> bool:
    """Whether `component` (what Airflow's `on_starting` names) is the scheduler of a
    LocalExecutor: the process every task process is forked from. Its `Job` does not know its
    type yet when `on_starting` runs, so the command line says which service it is."""
    if sys.argv[1:2] != ["scheduler"] or type(component).__name__ != "Job":
        return False
    from airflow.configuration import conf

    return "LocalExecutor" in conf.get("core", "executor")


def preload_task_modules(backend: str) -> dict[str, str]:
    """Imports `task_modules(backend)`; returns the modules that failed, with why.

    A module that fails to import is logged and skipped: the task that needs it fails then,
    with its own error, and the scheduler starts either way."""
    from reko.index.client import import_opensearch_sync_only

    started = time.process_time()
    import_opensearch_sync_only()
    failed = {}
    for name in task_modules(backend):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional dependency missing on this machine
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("reko could not preload %s for task processes: %s", name, exc)
    log.info("reko preloaded %s task modules in %.2f CPU-s", backend, time.process_time() - started)
    return failed
