#!/usr/bin/env python3
"""What one mapped analysis task costs besides its analysis: a cheap analyser, one frame a batch.

With an analyser that answers at once, a batch's time is overhead: reko's (paths, cache checks,
result writes) and Airflow's (the task instance around it). Measured two ways, same run:

* reko's own, per frame: `analyse_batch` over N cached-free frames in this process (no Airflow);
* per task instance: `video_analysis` under `dag.test()` with `batch_size=1`, so every frame is one
  mapped `analyse_frames` instance; its mean duration (from the metadata DB) minus the mean time
  `analyse_batch` reported for it is Airflow's part.

Run:  .venv/bin/python bench/bench_batch.py [--frames 20]   (results: bench/results/batch.{json,md})
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "bench")]
TMP = Path(tempfile.mkdtemp(prefix="reko-bench-batch-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(TMP / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "REKO_WORK_URI": (TMP / "work").as_uri(),
        "REKO_INDEX_PREFIX": f"reko-bench-batch-{uuid.uuid4().hex[:8]}",
        "REKO_BACKEND": "local",
        "REKO_LOCAL_TEXT_ANALYSER": "bench_batch:CheapAnalyser",
    }
)


class CheapAnalyser:
    """Answers every frame at once with one word: the analysis costs nothing measurable."""

    model_version = "cheap-1"

    def detect_text(self, image: bytes) -> dict[str, Any]:
        box = {"Left": 0.1, "Top": 0.1, "Width": 0.2, "Height": 0.1}
        word = {"DetectedText": "1234", "Type": "WORD", "Id": 0, "Confidence": 99.0}
        return {"TextDetections": [{**word, "Geometry": {"BoundingBox": box}}]}


def reko_per_frame(video: Path, frames: int) -> dict[str, float]:
    """`analyse_batch` over every frame, one batch, in this process: reko's own cost per frame."""
    from reko.pipeline import RunConfig, analyse_batch, extract, probe_video

    params = {"video_uri": video.as_uri(), "backend": "local", "frame_interval_s": 1.0, "analyses": ["text"]}
    job = probe_video(RunConfig.from_params({**params, "min_confidence": 50}), (TMP / "direct").as_uri())
    extract(job.cfg, job.store, job.info)
    started = time.perf_counter()
    report = analyse_batch(job.store, 0, frames, backend="local", analyses=["text"], interval_s=1.0)
    seconds = time.perf_counter() - started
    assert report["made"] == frames, report
    return {"frames": frames, "seconds": round(seconds, 3), "per_frame_s": round(seconds / frames, 4)}


def per_task_instance(video: Path, frames: int) -> dict[str, float]:
    """`video_analysis` under dag.test() with one frame a batch: what each mapped instance costs."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]
    run = dag.test(run_conf={"video_uri": video.as_uri(), "batch_size": 1})
    tis = [ti for ti in run.get_task_instances() if ti.task_id == "analyse_frames"]
    assert len(tis) == frames and all(str(ti.state) == "success" for ti in tis), [ti.state for ti in tis]
    durations = [(ti.end_date - ti.start_date).total_seconds() for ti in tis]
    inside = [ti.xcom_pull(task_ids="analyse_frames", key="report", map_indexes=ti.map_index) for ti in tis]
    work = [r["elapsed_s"] for r in inside]
    return {
        "instances": len(tis),
        "mean_s": round(statistics.mean(durations), 4),
        "median_s": round(statistics.median(durations), 4),
        "analyse_batch_mean_s": round(statistics.mean(work), 4),
        "airflow_mean_s": round(statistics.mean(durations) - statistics.mean(work), 4),
        "run_state": str(run.state),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "batch.json")
    args = parser.parse_args()
    from bench_bulk import opensearch_node

    from reko.localdev.airflow_services import create_pool, opensearch_connection
    from reko.localdev.short_videos import make_video

    video = make_video(TMP / "video" / "frames.mp4", "1234", seconds=args.frames)
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True
    )
    create_pool(dict(os.environ))
    with opensearch_node() as url:
        os.environ["AIRFLOW_CONN_OPENSEARCH_DEFAULT"] = opensearch_connection(url)
        results = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "nproc": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "reko_per_frame": reko_per_frame(video, args.frames),
            "per_task_instance": per_task_instance(video, args.frames),
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    r, t = results["reko_per_frame"], results["per_task_instance"]
    md = (
        f"Benchmark `bench/bench_batch.py`, {results['date']}, {results['nproc']} cores, load average"
        f" {results['loadavg_before']} before, {results['loadavg_after']} after.\n\n"
        f"A cheap analyser (answers at once), {args.frames} frames of a 320x240 video.\n\n"
        f"- reko's own cost per frame (`analyse_batch`, one batch, no Airflow): **{r['per_frame_s']} s**\n"
        f"- one mapped `analyse_frames` instance per frame under `dag.test()`: mean **{t['mean_s']} s**"
        f" (median {t['median_s']} s), of which `analyse_batch` {t['analyse_batch_mean_s']} s and"
        f" Airflow {t['airflow_mean_s']} s\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
