"""Mapped-task stand-ins for the throttling test and bench/: each runs in its own process.

`reko_batch` is what one mapped `analyse_frames` task does (the real `reko.pipeline.analyse_batch`
with backend "aws"); `naive_batch` is the comparison: one DetectText call per frame, one after
another, a plain boto3 client with its default retries and no pacing.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any


def _env(env: dict[str, str]) -> None:
    os.environ.update(env)


def reko_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `analyse_batch` on spec["start"]:spec["end"] of spec["store"] with spec["env"] set."""
    _env(spec["env"])
    from reko.pipeline import analyse_batch
    from reko.storage import VideoStore

    started = time.time()
    report = analyse_batch(
        VideoStore(**spec["store"]),
        spec["start"],
        spec["end"],
        backend="aws",
        analyses=["text"],
        interval_s=1.0,
        analysis_options={"min_confidence": 50.0},
    )
    report["wall_s"] = time.time() - started
    return report


def naive_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """One `detect_text` per S3 key in spec["keys"], default client config (or spec["retries"] as
    botocore's retry mode); count what was lost."""
    import boto3
    from botocore.config import Config

    retries = spec.get("retries")
    client = boto3.client(
        "rekognition",
        config=Config(retries={"mode": retries}) if retries else None,
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    done, lost = 0, []
    started = time.time()
    for key in spec["keys"]:
        try:
            client.detect_text(Image={"S3Object": {"Bucket": spec["bucket"], "Name": key}})
            done += 1
        except Exception as exc:  # noqa: BLE001 - a lost frame, whatever the reason
            lost.append(f"{key}: {type(exc).__name__}")
    return {"done": done, "lost": lost, "wall_s": time.time() - started}


def run_parallel(func: Any, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each spec in its own fresh process (spawned, like a task's own interpreter), all at once."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(specs)) as pool:
        return pool.map(func, specs)
