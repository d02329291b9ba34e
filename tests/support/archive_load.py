"""The archive load helpers live in `reko.localdev.archive_load` (the benchmark uses them too)."""

from __future__ import annotations

from reko.localdev.archive_load import (
    ANALYSIS_DAG_ID,
    DAY_END,
    DAY_START,
    SCAN_DAG_ID,
    WAITING_TASKS,
    CpuSampler,
    ScanOutcome,
    make_archive,
    run_scan,
    scan_env,
)

__all__ = [
    "ANALYSIS_DAG_ID",
    "DAY_END",
    "DAY_START",
    "SCAN_DAG_ID",
    "WAITING_TASKS",
    "CpuSampler",
    "ScanOutcome",
    "make_archive",
    "run_scan",
    "scan_env",
]
