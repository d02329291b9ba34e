"""Many short videos through `video_archive_scan` under the real scheduler, and where the time went.

Shared by the load test (`tests/test_archive_load.py`) and the benchmark (`bench/bench_archive.py`),
so it lives in the package (bench/ imports nothing from tests/):
an archive of N one-second videos, all modified on one day; one scan run over that day, triggered
through the REST API with an explicit data interval as an operator re-scanning a day would; then
the scan's and the analysis runs' task instances read back from the REST API.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reko.localdev.airflow_services import AirflowClient
from reko.localdev.short_videos import make_video, set_mtime

SCAN_DAG_ID = "video_archive_scan"
ANALYSIS_DAG_ID = "video_analysis"
DAY_START = datetime(2025, 6, 1, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
# the scan waits (deferred) for the analysis runs it started: that duration is not work
WAITING_TASKS = frozenset({"wait_for_analyses"})


def make_archive(root: Path, count: int, seconds: float = 1.0) -> list[Path]:
    """`count` videos of `seconds` showing the numbers 1000, 1001, ...; mtimes spread over the day."""

    def one(i: int) -> Path:
        path = make_video(root / f"cam{i % 4}" / f"v{i:04d}.mp4", str(1000 + i), seconds=seconds)
        return set_mtime(path, DAY_START + timedelta(seconds=(i * 86399) // max(count, 1)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def upload_archive(s3: Any, bucket: str, videos: list[Path], root: Path) -> list[str]:
    """Upload the archive's videos under their paths relative to `root`; their s3:// URIs.

    S3 sets each object's LastModified to now, so a scan of S3 uploads needs an interval around now.
    """
    uris = []
    for path in videos:
        key = path.relative_to(root).as_posix()
        s3.upload_file(str(path), bucket, key)
        uris.append(f"s3://aws_default@{bucket}/{key}")
    return uris


def scan_env(archive: Path | str, max_active: int, parallelism: int) -> dict[str, str]:
    """Deployment settings for a scan of `archive` (a folder or an s3:// prefix) over daily intervals."""
    return {
        "REKO_ARCHIVE_URI": archive if isinstance(archive, str) else archive.as_uri(),
        "REKO_SCAN_SCHEDULE": "0 0 * * *",
        "REKO_SCAN_START_DATE": "2025-01-01",
        "REKO_MAX_ACTIVE_ANALYSES": str(max_active),
        "REKO_SCAN_POKE_S": "2",  # one trigger waits for all of a scan's runs
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
    }


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


@dataclass
class ScanOutcome:
    """One scan run over the day and everything it started, as the REST API reports them."""

    wall_s: float
    scan_run: dict[str, Any]
    summary: dict[str, Any]
    analysis_runs: list[dict[str, Any]]
    scan_tis: list[dict[str, Any]]
    analysis_tis: list[dict[str, Any]]
    cpu_s: dict[str, float]
    # (unix time, busy core-seconds, all core-seconds) of the whole machine, every half second:
    # idle cores show where the run waits on Airflow rather than on work
    machine: list[tuple[float, float, float]] = field(default_factory=list)

    def idle_core_s(self, start: float | None = None, end: float | None = None) -> float:
        """Core-seconds the machine's cores were idle between `start` and `end` (unix times)."""
        lo, hi = start or 0.0, end or float("inf")
        inside = [m for m in self.machine if lo <= m[0] <= hi]
        if len(inside) < 2:
            return 0.0
        (_, busy0, all0), (_, busy1, all1) = inside[0], inside[-1]
        return (all1 - all0) - (busy1 - busy0)

    def timeline(self) -> dict[str, float]:
        """Seconds from the scan's trigger to the first and last moments of each step: where the
        fixed cost of a scan (before the first analysis starts, after the last ends) goes."""
        t0 = self.machine[0][0]
        marks: dict[str, float] = {}

        def mark(name: str, value: str | None) -> None:
            if (t := _ts(value)) is not None:
                marks[name] = round(t - t0, 2)

        mark("scan run started", self.scan_run.get("start_date"))
        by_task = defaultdict(list)
        for ti in self.scan_tis + self.analysis_tis:
            by_task[ti["task_id"]].append(ti)
        for task_id, tis in by_task.items():
            ran = [ti for ti in tis if ti.get("start_date") and ti.get("state") != "skipped"]
            if not ran:
                continue
            first = min(ran, key=lambda ti: ti["start_date"])
            last = max(ran, key=lambda ti: ti.get("end_date") or "")
            mark(f"{task_id}: first queued", first.get("queued_when"))
            mark(f"{task_id}: first started", first["start_date"])
            mark(f"{task_id}: first ended", first.get("end_date"))
            mark(f"{task_id}: last ended", last.get("end_date"))
        if self.analysis_runs:
            first_run = min(self.analysis_runs, key=lambda r: r["queued_at"])
            mark("first analysis run: queued", first_run["queued_at"])
            mark("first analysis run: started", first_run["start_date"])
            mark("last analysis run: ended", max(r["end_date"] for r in self.analysis_runs))
        mark("scan run ended", self.scan_run.get("end_date"))
        return dict(sorted(marks.items(), key=lambda kv: kv[1]))

    def accounting(self) -> dict[str, Any]:
        """Where the wall time went: inside tasks (by task), between tasks, and per video."""
        by_task: dict[str, list[float]] = defaultdict(list)
        skipped = 0
        for ti in self.scan_tis + self.analysis_tis:
            if ti.get("state") == "skipped":  # skipped by a branch or trigger rule: no process ran
                skipped += 1
            elif ti.get("duration") is not None:
                by_task[ti["task_id"]].append(float(ti["duration"]))
        stages = {
            task: {"count": len(d), "total_s": round(sum(d), 2), "mean_s": round(sum(d) / len(d), 3)}
            for task, d in sorted(by_task.items(), key=lambda kv: -sum(kv[1]))
            if task not in WAITING_TASKS
        }
        per_run_task_s: dict[str, float] = defaultdict(float)
        for ti in self.analysis_tis:
            per_run_task_s[ti["dag_run_id"]] += float(ti.get("duration") or 0)
        run_spans, gaps, queued = [], [], []
        for run in self.analysis_runs:
            start, end, queued_at = _ts(run["start_date"]), _ts(run["end_date"]), _ts(run["queued_at"])
            run_spans.append(end - start)
            gaps.append(end - start - per_run_task_s[run["dag_run_id"]])
            queued.append(start - queued_at)
        videos = len(self.analysis_runs)
        first_run = min((_ts(r["start_date"]) for r in self.analysis_runs), default=None)
        last_run = max((_ts(r["end_date"]) for r in self.analysis_runs), default=None)
        machine = {}
        if len(self.machine) >= 2:
            machine = {
                "busy_core_s": round(self.machine[-1][1] - self.machine[0][1], 1),
                "idle_core_s": round(self.idle_core_s(), 1),
                "idle_core_s_before_first_run": round(self.idle_core_s(end=first_run), 1),
                "idle_core_s_while_runs": round(self.idle_core_s(first_run, last_run), 1),
                "idle_core_s_after_last_run": round(self.idle_core_s(start=last_run), 1),
                "before_first_run_s": round(first_run - self.machine[0][0], 1) if first_run else None,
                "after_last_run_s": round(self.machine[-1][0] - last_run, 1) if last_run else None,
            }
        timeline = self.timeline() if self.machine else {}
        in_task_s = sum(s["total_s"] for s in stages.values())
        waiting = [d for task in WAITING_TASKS for d in by_task.get(task, [])]
        slowest = next(iter(stages), None)
        return {
            "videos": videos,
            "wall_s": round(self.wall_s, 1),
            "videos_per_hour": round(videos / self.wall_s * 3600, 1) if videos else 0.0,
            "wall_per_video_s": round(self.wall_s / videos, 3) if videos else None,
            "in_task_total_s": round(in_task_s, 1),
            "task_instances": sum(len(d) for d in by_task.values()),
            "task_instances_skipped": skipped,
            "trigger_and_wait_mean_s": _mean(waiting),
            "analysis_run_mean_s": _mean(run_spans),
            "analysis_run_gaps_mean_s": _mean(gaps),
            "analysis_run_queued_mean_s": _mean(queued),
            "slowest_stage": slowest,
            "cpu_s_by_service": self.cpu_s,
            "cpu_s_per_video": round(sum(self.cpu_s.values()) / videos, 3) if videos else None,
            "machine": machine,
            "timeline_s": timeline,
            "stages": stages,
        }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def run_scan(
    client: AirflowClient,
    timeout_s: float,
    attempt: int = 1,
    max_videos: int = 1000,
    service_pids: dict[str, int] | None = None,
    interval: tuple[datetime, datetime] = (DAY_START, DAY_END),
    prefix: str | None = None,
) -> ScanOutcome:
    """Trigger one scan run over the `interval` (the archive's day by default) and wait for it (it
    ends when every analysis it started has).

    Each `attempt` is its own run (a DAG's runs need distinct ids and logical dates) over the same
    data interval. With `service_pids` (name -> pid of each Airflow service), the CPU each used is
    measured too. `prefix` (a folder's URI or an s3:// prefix) replaces the deployment's archive
    (REKO_ARCHIVE_URI) for this run, so one deployment can scan archives of several tests.
    """
    start, end = interval
    sampler = CpuSampler(service_pids or {})
    sampler.start()
    body = {
        "dag_run_id": f"rescan_{attempt}__{start.date()}",
        "logical_date": (start + timedelta(seconds=attempt - 1)).isoformat(),
        "data_interval_start": start.isoformat(),
        "data_interval_end": end.isoformat(),
        "conf": {"max_videos": max_videos, **({"prefix": prefix} if prefix else {})},
    }
    started = time.perf_counter()
    run_id = client.call("POST", f"/dags/{SCAN_DAG_ID}/dagRuns", body)["dag_run_id"]
    client.wait_for_run(SCAN_DAG_ID, run_id, timeout_s=timeout_s, poll_s=1)
    wall_s = time.perf_counter() - started
    cpu_s = sampler.stop()
    path = f"/dags/{SCAN_DAG_ID}/dagRuns/{run_id}/taskInstances/summarise_scan/xcomEntries/return_value"
    value = client.call("GET", path)["value"]
    scan_run = client.call("GET", f"/dags/{SCAN_DAG_ID}/dagRuns/{run_id}")
    scan_tis = client.task_instances(SCAN_DAG_ID, run_id)
    videos = {ti["rendered_map_index"] for ti in scan_tis if ti["task_id"] == "analyse_video"}
    runs = [  # the analysis runs this scan started (a video's earlier runs are older than the scan)
        r
        for r in client.every(f"/dags/{ANALYSIS_DAG_ID}/dagRuns", "dag_runs")
        if r["conf"].get("video_uri") in videos and _ts(r["queued_at"]) >= _ts(scan_run["queued_at"])
    ]
    ids = {r["dag_run_id"] for r in runs}
    tis = [ti for ti in client.task_instances(ANALYSIS_DAG_ID, "~") if ti["dag_run_id"] in ids]
    return ScanOutcome(
        wall_s=wall_s,
        scan_run=scan_run,
        summary=json.loads(value) if isinstance(value, str) else value,
        analysis_runs=runs,
        scan_tis=scan_tis,
        analysis_tis=tis,
        cpu_s=cpu_s,
        machine=sampler.machine,
    )


class CpuSampler(threading.Thread):
    """CPU seconds used by each Airflow service's process tree, read from /proc every 0.5 s.

    Task processes are children of the scheduler's executor workers, so the scheduler's tree is
    split into the scheduler itself and everything below it (executor workers and task processes).
    A process's last half second before it exits is missed, so task CPU is a slight undercount.
    """

    def __init__(self, services: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.services, self.stop_event = services, threading.Event()
        self.seen: dict[tuple[str, int, float], float] = {}  # (label, pid, created) -> CPU seconds
        self.initial: dict[tuple[str, int, float], float] = {}
        self.machine: list[tuple[float, float, float]] = []  # see ScanOutcome.machine

    def start(self) -> None:
        self.sample()
        self.initial = dict(self.seen)  # what the services had used before: not counted
        super().start()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.sample()

    def sample(self) -> None:
        import psutil

        cores = psutil.cpu_times()._asdict()
        busy = sum(cores.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
        self.machine.append((time.time(), busy, busy + cores["idle"] + cores.get("iowait", 0.0)))
        for name, pid in self.services.items():
            try:
                root = psutil.Process(pid)
                below = f"{name} children" if name == "scheduler" else name
                procs = [(name, root)] + [(below, child) for child in root.children(recursive=True)]
            except psutil.Error:
                continue
            for label, proc in procs:
                try:
                    times = proc.cpu_times()
                    key = (label, proc.pid, proc.create_time())
                except psutil.Error:
                    continue
                self.seen[key] = max(self.seen.get(key, 0.0), times.user + times.system)

    def stop(self) -> dict[str, float]:
        """Stop sampling; CPU seconds by service (and the scheduler's children)."""
        self.stop_event.set()
        self.join()
        totals: dict[str, float] = defaultdict(float)
        for key, cpu in self.seen.items():
            totals[key[0]] += cpu - self.initial.get(key, 0.0)
        return {label: round(cpu, 1) for label, cpu in sorted(totals.items())}
