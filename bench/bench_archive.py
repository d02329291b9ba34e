#!/usr/bin/env python3
"""Scheduler overhead per video and videos per hour for an archive of short clips (a benchmark).

N one-second videos (default 60) go through `video_archive_scan` under the real scheduler
(api-server, scheduler, dag-processor, triggerer; LocalExecutor with `--parallelism` task processes),
and the same N videos through the same pipeline functions called directly (the baseline, measured
in the same run, before and after the scheduler run, with one worker process per core: what a plain
script would do on this machine):

* airflow wall: the scan run's trigger to its end (it ends when every analysis run it started has),
  on a warm deployment: an untimed scan with no videos runs first, since a just-started scheduler
  takes ~10 s to start its first run, once;
* direct wall: the baseline's wall time (`probe_video` + `analyse_video`: extract, analyse, load,
  segments, passes, video document);
* scheduler overhead per video = (airflow wall - direct wall) / N: the wall time Airflow adds per
  video over the same work (scheduling, task start-up, deferral, XCom), on the same machine;
* ratio = airflow wall / direct wall; videos per hour = N / airflow wall;
* where the time went, from the REST API: time inside task instances by task, the gap inside each
  analysis run between its tasks (run span minus its tasks' durations), and queueing of runs.

Results go to bench/results/archive.json and .md. Run:
    .venv/bin/python bench/bench_archive.py [--videos 60] [--parallelism 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from bench_bulk import opensearch_node  # noqa: E402 - the bench directory is on sys.path

from reko.localdev.airflow_services import opensearch_connection  # noqa: E402 - needs the path above
from reko.localdev.archive_load import (  # noqa: E402
    ANALYSIS_DAG_ID,
    DAY_START,
    SCAN_DAG_ID,
    make_archive,
    run_scan,
    scan_env,
)
from reko.localdev.deployment import airflow_deployment  # noqa: E402

SETTINGS = {"backend": "local", "frame_interval_s": 1.0, "analyses": ["text"], "min_confidence": 50.0}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def analyse_directly(video: str, work_uri: str) -> float:
    """Everything one `video_analysis` run does to a video, in this process; returns its seconds.

    The same two calls as the DAG's short path (`probe`, then `analyse_video`), lease aside.
    """
    from reko.index.client import IndexNames, get_client
    from reko.pipeline import RunConfig, analyse_video, probe_video

    started = time.perf_counter()
    job = probe_video(RunConfig.from_params({"video_uri": video, **SETTINGS}), work_uri)
    result = analyse_video(get_client(), IndexNames.current(), job, dag_id="bench", run_id="direct")
    if result["video"]["status"] != "complete":
        raise RuntimeError(f"direct analysis of {video} ended {result['video']['status']}")
    return time.perf_counter() - started


def warm_up(client: Any, timeout_s: float) -> dict[str, float]:
    """One scan of the day before the archive's (no videos) on the fresh deployment, untimed.

    A just-started scheduler takes ~10 s to start its first run (0.5-1.4 s once warm, measured
    2026-12-02): a start-up cost of the service, paid once, not per archive, so the timed scan runs
    on a scheduler that has already run one. Returns how long the warm-up run waited to start."""
    before = (DAY_START - timedelta(days=1), DAY_START)
    outcome = run_scan(client, timeout_s=timeout_s, interval=before)
    queued, started = (outcome.scan_run[k] for k in ("queued_at", "start_date"))
    return {
        "first_run_started_after_s": round(
            datetime.fromisoformat(started).timestamp() - datetime.fromisoformat(queued).timestamp(), 2
        ),
        "wall_s": round(outcome.wall_s, 1),
    }


def direct_baseline(videos: list[Path], work_root: Path, os_url: str) -> dict[str, Any]:
    """The videos through the pipeline functions, one worker process per core, own index prefix."""
    os.environ.update(
        {
            "AIRFLOW_CONN_OPENSEARCH_DEFAULT": opensearch_connection(os_url),
            "REKO_INDEX_PREFIX": f"reko-bench-direct-{uuid.uuid4().hex[:8]}",
            "REKO_BACKEND": "local",
        }
    )
    os.environ.pop("REKO_LOCAL_TEXT_ANALYSER", None)  # the real OCR, as in the Airflow run
    work_uri = work_root.as_uri()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        per_video = list(pool.map(analyse_directly, [v.as_uri() for v in videos], [work_uri] * len(videos)))
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 2),
        "workers": os.cpu_count() or 2,
        "in_process_total_s": round(sum(per_video), 2),
        "per_video_mean_s": round(sum(per_video) / len(per_video), 3),
    }


# a task process forked from a LocalExecutor worker has Airflow's core (models, SQLAlchemy) loaded
# already; a fresh interpreter (a Celery or Kubernetes worker's first task) has only what it imports
_PARSE_PROBE = (
    "import sys, time, runpy; sys.path.insert(0, 'plugins'); import airflow.sdk;{preload}"
    " t = time.process_time(); runpy.run_path({path!r}); print(time.process_time() - t)"
)


def dag_parse_cpu_s(repeats: int = 3) -> dict[str, dict[str, float]]:
    """CPU-s to parse each DAG file (the median of `repeats` fresh interpreters), cold and with the
    scheduler's models preloaded as in a LocalExecutor task process: what every task process pays first."""
    import statistics

    cases = {
        "fresh interpreter": "",
        "core preloaded": " import airflow.models.dagrun, airflow.models.serialized_dag;",
    }
    out: dict[str, dict[str, float]] = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        for case, preload in cases.items():
            code = _PARSE_PROBE.format(preload=preload, path=str(path))
            runs = [_cpu_s_printed_by(code) for _ in range(repeats)]
            out.setdefault(path.name, {})[case] = round(statistics.median(runs), 3)
    return out


def _cpu_s_printed_by(code: str) -> float:
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def run(args: argparse.Namespace, os_url: str, root: Path) -> dict[str, Any]:
    log(f"making {args.videos} one-second videos")
    videos = make_archive(root / "archive", args.videos)
    results: dict[str, Any] = {
        "machine": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "videos": args.videos,
        "parallelism": args.parallelism,
        "max_active_analyses": args.max_active_analyses,
    }
    results["dag_parse_cpu_s"] = dag_parse_cpu_s()
    log(f"  DAG file parse, CPU-s: {results['dag_parse_cpu_s']}")
    log("baseline (before): the pipeline functions called directly")
    before = direct_baseline(videos, root / "direct-before", os_url)
    log(f"  {before}")
    env = {**scan_env(root / "archive", args.max_active_analyses, args.parallelism), "REKO_BACKEND": "local"}
    prefix = f"reko-bench-archive-{uuid.uuid4().hex[:8]}"
    log(f"starting Airflow (parallelism {args.parallelism}) and scanning the archive")
    with airflow_deployment(
        os_url, root / "airflow-run", prefix, [ANALYSIS_DAG_ID, SCAN_DAG_ID], env
    ) as services:
        pids = {name: proc.pid for name, proc in services.procs.items()}
        results["warm_up"] = warm_up(services.client(), args.timeout_s)
        log(f"  warm-up scan (no videos): {results['warm_up']}")
        outcome = run_scan(services.client(), timeout_s=args.timeout_s, service_pids=pids)
    if outcome.scan_run["state"] != "success" or outcome.summary["analysed"] != args.videos:
        raise RuntimeError(f"the scan did not analyse every video: {outcome.summary}")
    airflow = outcome.accounting()
    log(f"  airflow: {airflow['wall_s']} s, slowest stage {airflow['slowest_stage']}")
    log("baseline (after)")
    after = direct_baseline(videos, root / "direct-after", os_url)
    log(f"  {after}")
    direct_wall = (before["wall_s"] + after["wall_s"]) / 2
    direct_work = (before["per_video_mean_s"] + after["per_video_mean_s"]) / 2
    results.update(
        {
            "direct_before": before,
            "direct_after": after,
            "airflow": airflow,
            "summary": {
                "airflow_wall_s": airflow["wall_s"],
                "direct_wall_s": round(direct_wall, 2),
                "ratio_airflow_to_direct": round(airflow["wall_s"] / direct_wall, 2),
                "scheduler_overhead_per_video_s": round((airflow["wall_s"] - direct_wall) / args.videos, 3),
                "videos_per_hour_airflow": airflow["videos_per_hour"],
                "videos_per_hour_direct": round(args.videos / direct_wall * 3600, 1),
                "in_task_per_video_s": round(airflow["in_task_total_s"] / args.videos, 3),
                "direct_in_process_per_video_s": round(direct_work, 3),
                "slowest_stage": airflow["slowest_stage"],
            },
        }
    )
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def markdown(r: dict[str, Any]) -> str:
    s, a = r["summary"], r["airflow"]
    lines = [
        f"Benchmark `bench/bench_archive.py`, {r['machine']['date']}, {r['machine']['nproc']} cores, load"
        f" average {r['machine']['loadavg_before']} before, {r['machine']['loadavg_after']} after (shared"
        " machine: the baseline is measured in the same run, before and after).",
        "",
        f"{r['videos']} one-second 320x240 videos (1 frame each at 1 s), local OCR; Airflow LocalExecutor"
        f" with parallelism {r['parallelism']}, at most {r['max_active_analyses']} analysis runs at once."
        + (
            " The deployment is warm: one untimed scan with no videos ran first (on the fresh deployment"
            f" its run started {r['warm_up']['first_run_started_after_s']} s after its trigger, a"
            " start-up cost paid once)."
            if r.get("warm_up")
            else ""
        ),
        "",
        "| | wall | per video | videos/hour |",
        "|---|---|---|---|",
        f"| direct (pipeline functions, {r['direct_before']['workers']} processes), before | "
        f"{r['direct_before']['wall_s']} s | {r['direct_before']['wall_s'] / r['videos']:.3f} s | |",
        f"| direct, after | {r['direct_after']['wall_s']} s"
        f" | {r['direct_after']['wall_s'] / r['videos']:.3f} s | |",
        f"| direct, mean | {s['direct_wall_s']} s | {s['direct_wall_s'] / r['videos']:.3f} s |"
        f" {s['videos_per_hour_direct']} |",
        f"| `video_archive_scan` + `video_analysis` runs | {s['airflow_wall_s']} s"
        f" | {a['wall_per_video_s']} s | {s['videos_per_hour_airflow']} |",
        "",
        f"**Scheduler overhead per video: {s['scheduler_overhead_per_video_s']} s** (Airflow wall minus"
        f" direct wall, per video); Airflow / direct = **{s['ratio_airflow_to_direct']}**.",
        "",
        f"Inside task instances (wall, {r['parallelism']} at once on {r['machine']['nproc']} cores):"
        f" {a['in_task_total_s']} s over {a['task_instances']} task instances that ran"
        f" ({a.get('task_instances_skipped', 0)} more were skipped: no process)"
        f" ({s['in_task_per_video_s']} s per video, against {s['direct_in_process_per_video_s']} s of work"
        " per video in the direct run). An analysis run lasted"
        f" {a['analysis_run_mean_s']} s on average, of which {a['analysis_run_gaps_mean_s']} s between its"
        f" tasks; runs waited {a['analysis_run_queued_mean_s']} s queued for a slot.",
        "",
        f"CPU during the Airflow run: {a['cpu_s_per_video']} CPU-s per video ("
        + ", ".join(f"{name} {cpu}" for name, cpu in a["cpu_s_by_service"].items())
        + f" CPU-s in all), against {s['direct_in_process_per_video_s']} s per video of work in the direct"
        " run: Airflow's own work per task instance (a process, the DAG file parsed, execution API"
        " calls), not the analysis, is the cost of a short clip. 'scheduler children' are the executor"
        " workers and the task processes.",
        "",
        *_machine_lines(a.get("machine") or {}),
        *_parse_lines(r.get("dag_parse_cpu_s") or {}),
        *_timeline_lines(a.get("timeline_s") or {}),
        f"Slowest stage (most time inside task instances): `{s['slowest_stage']}`.",
        "",
        "| task | instances | total | mean |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t} | {v['count']} | {v['total_s']} s | {v['mean_s']} s |" for t, v in a["stages"].items()]
    return "\n".join(lines) + "\n"


def _parse_lines(parse: dict[str, dict[str, float]]) -> list[str]:
    if not parse:
        return []
    cells = "; ".join(
        f"`{name}` {c['fresh interpreter']} fresh, {c['core preloaded']} with the scheduler's models loaded"
        for name, c in parse.items()
    )
    return [f"Parsing a DAG file, which every task process does first (CPU-s, median of 3): {cells}.", ""]


def _machine_lines(m: dict[str, Any]) -> list[str]:
    """Idle cores during the Airflow run, split at the first analysis run's start and the last's end."""
    if not m:
        return []
    return [
        f"The machine's cores (every process, OpenSearch and this benchmark too) were busy"
        f" {m['busy_core_s']} core-s and idle {m['idle_core_s']} core-s during the Airflow run:"
        f" {m['idle_core_s_before_first_run']} idle in the {m['before_first_run_s']} s before the first"
        f" analysis run started (the scan listing and triggering), {m['idle_core_s_while_runs']} while"
        f" analysis runs went on, {m['idle_core_s_after_last_run']} in the {m['after_last_run_s']} s after"
        " the last one ended (the scan's wait and summary).",
        "",
    ]


def _timeline_lines(marks: dict[str, float]) -> list[str]:
    """The scan's steps in order, seconds after its trigger."""
    if not marks:
        return []
    return [
        "Timeline (seconds after the scan was triggered): "
        + "; ".join(f"{name} {t:g}" for name, t in marks.items())
        + ".",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--parallelism", type=int, default=8, help="Airflow task processes at once")
    parser.add_argument("--max-active-analyses", type=int, default=8, help="REKO_MAX_ACTIVE_ANALYSES")
    parser.add_argument("--timeout-s", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "archive.json")
    args = parser.parse_args()
    with opensearch_node() as url, tempfile.TemporaryDirectory(prefix="reko-bench-archive-") as tmp:
        results = run(args, url, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
