"""Faces on AWS: billed images per frame, and search by photo with 100,000 faces in the collection.

1. **Billed images per frame.** Frames in moto's S3 are analysed for faces by the real
   `analyse_batch` (backend aws) against the loopback Rekognition server
   (`reko.localdev.rekognition_server`), which counts the calls it accepted per operation. The
   floor is what the issue first described: DetectFaces per frame plus IndexFaces per frame (2).
2. **Search by photo latency** with `--faces` (default 100,000) faces in the collection and as
   many documents with their `face_id` in the faces index (synthetic: uniform boxes, mean colours
   spread so a query photo matches `--matches` of them). Columns, interleaved: the floor, the
   two parts `find_person` cannot avoid measured alone in the same run (the SearchFacesByImage
   call to the loopback server through boto3, and the faces-index `terms` lookup of the matched
   face ids through opensearch-py), and `find_person` itself with REKO_BACKEND=aws (photo check,
   the call, the lookup, the result's shape). The loopback server's search is a Python scan of
   every stored face: it stands in for Rekognition's and is not a measure of it.

Run (own throw-away node, heap 1 GB): PYTHONPATH=plugins .venv/bin/python bench/bench_aws_faces.py
Writes bench/results/aws-faces.md and aws-faces.json.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

BUCKET = "reko-bench-aws-faces"
TARGET = (200, 40, 40)  # the query person's mean colour (the loopback server's face signature)
NOBODY = (250, 250, 10)  # a photo of nobody indexed: >= 130 colour steps from every stored face
FLOOR = "floor: SearchFacesByImage call + terms lookup, each alone (sum of p50s / p95s)"
CALL = "SearchFacesByImage alone (boto3 -> loopback server)"
LOOKUP = "faces-index terms lookup of the matched ids alone (opensearch-py)"
FIND = "find_person in-process (REKO_BACKEND=aws)"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def jpeg(colour: tuple[int, int, int], width: int = 320, height: int = 240) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


from reko.localdev.opensearch import running_node as opensearch_node  # noqa: E402


@contextmanager
def aws_loopback(tmp: Path) -> Iterator[tuple[Any, Any]]:
    """moto S3 + the loopback Rekognition server behind `aws_default`; (s3 client, server)."""
    from reko.localdev.moto_s3 import aws_connection, moto_s3
    from reko.localdev.rekognition_server import RekognitionServer

    with moto_s3(BUCKET) as (endpoint, s3):
        server = RekognitionServer(
            tps=10_000, s3_reader=lambda bucket, key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        )
        server.start()
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = aws_connection(endpoint, server.endpoint)
        os.environ["REKO_REKOGNITION_LIMITER_DIR"] = str(tmp / "limiter")
        os.environ["REKO_REKOGNITION_TPS"] = "10000"
        os.environ["REKO_BACKEND"] = "aws"
        try:
            yield s3, server
        finally:
            server.stop()


# --- 1. billed images per frame -------------------------------------------------------------------


def billed_per_frame(s3: Any, server: Any, frames: int) -> dict[str, Any]:
    from reko.pipeline import analyse_batch
    from reko.storage import VideoStore

    store = VideoStore.for_video(f"s3://aws_default@{BUCKET}/work", "s3://src/bench-faces.mp4", 1.0)
    rng = random.Random(1)
    for index in range(frames):  # every frame differs, so none is skipped as a duplicate
        colour = (rng.randrange(60, 256), rng.randrange(0, 256), rng.randrange(0, 256))
        key = f"work/{store.video_id}/i1000ms/frames/{store.stem}.{index:07d}.jpg"
        s3.put_object(Bucket=BUCKET, Key=key, Body=jpeg(colour, 160 + index % 7, 120))
    server.reset()
    before = dict(server.calls)
    started = time.monotonic()
    report = analyse_batch(store, 0, frames, backend="aws", analyses=["faces"], interval_s=1.0)
    elapsed = time.monotonic() - started
    calls = {op: n - before.get(op, 0) for op, n in server.calls.items() if n - before.get(op, 0)}
    return {
        "frames": frames,
        "made": report["made"],
        "failed": len(report["failed"]),
        "server_calls": calls,
        "index_faces_per_frame": round(calls.get("IndexFaces", 0) / frames, 3),
        "detect_faces_per_frame": round(calls.get("DetectFaces", 0) / frames, 3),
        "floor_billed_per_frame": 2,
        "billed_per_frame": round(report["made"] / frames, 3),
        "wall_s": round(elapsed, 2),
    }


# --- 2. search by photo at scale -------------------------------------------------------------------


def fill(client: Any, names: Any, server: Any, count: int, matches: int) -> dict[str, Any]:
    """`count` faces in the collection and the faces index; `matches` of them the target's."""
    from reko.aws.face_collection import collection_id
    from reko.index.bulk import bulk_load
    from reko.index.client import ensure_templates

    ensure_templates(client, names)
    rng = random.Random(7)
    stored: dict[str, dict[str, Any]] = {}
    collection = collection_id(names.prefix)
    step = max(1, count // matches)

    def actions() -> Iterator[dict[str, Any]]:
        for i in range(count):
            face_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if i % step == 0 and i // step < matches:
                signature = tuple(c + rng.uniform(-3, 3) for c in TARGET)
            else:  # someone else: at least ~60 colour steps from the target (similarity < 70)
                signature = (rng.uniform(0, 120), rng.uniform(100, 255), rng.uniform(0, 255))
            video, frame = f"bench-{i // 5000:04d}-0123456789", i % 5000
            box = {"Width": 0.1, "Height": 0.15, "Left": rng.random() * 0.9, "Top": rng.random() * 0.8}
            stored[face_id] = {
                "FaceId": face_id,
                "BoundingBox": box,
                "Confidence": 99.0,
                "signature": signature,
            }
            doc = {
                "video_id": video,
                "frame_index": frame,
                "timestamp_ms": frame * 1000,
                "ordinal": 0,
                "confidence": 99.0,
                "bbox": {k.lower(): v for k, v in box.items()},
                "frame_uri": f"s3://aws_default@{BUCKET}/work/{video}/i1000ms/frames/f.{frame:07d}.jpg",
                "backend": "aws",
                "model": f"rekognition-IndexFaces@{collection}:7.0",
                "face_id": face_id,
            }
            yield {"_index": names.faces, "_id": f"{video}:{frame:07d}:face:000", "_source": doc}

    started = time.monotonic()
    written = bulk_load(client, actions()).written
    client.indices.refresh(index=names.faces)
    server.collections[collection] = stored
    target = sum(1 for f in stored.values() if abs(f["signature"][1] - TARGET[1]) < 10)
    return {"faces": written, "target_faces": target, "load_s": round(time.monotonic() - started, 1)}


def latency(client: Any, names: Any, queries: int, warmup: int) -> dict[str, Any]:
    from reko.aws.face_collection import MAX_HITS, _hook, collection_id
    from reko.faces.search import find_person

    photos = [jpeg(TARGET, 480, 360), jpeg(TARGET, 400, 300), jpeg(NOBODY, 480, 360)]
    collection = collection_id(names.prefix)
    conn = _hook().conn
    ids_of: dict[int, list[str]] = {}

    def call(i: int) -> int:
        photo = photos[i % len(photos)]
        response = conn.search_faces_by_image(
            CollectionId=collection, Image={"Bytes": photo}, MaxFaces=1000, FaceMatchThreshold=83.0
        )
        ids_of[i % len(photos)] = [m["Face"]["FaceId"] for m in response["FaceMatches"]]
        return len(ids_of[i % len(photos)])

    def lookup(i: int) -> int:
        ids = ids_of.get(i % len(photos)) or []
        if not ids:
            return 0
        body = {
            "size": MAX_HITS,
            "query": {"bool": {"filter": [{"terms": {"face_id": ids}}]}},
            "_source": {"excludes": ["embedding"]},
        }
        return len(client.search(index=names.faces, body=body)["hits"]["hits"])

    def find(i: int) -> int:
        return find_person(client, names, photos[i % len(photos)])["matches"]

    columns: dict[str, Callable[[int], int]] = {CALL: call, LOOKUP: lookup, FIND: find}
    times: dict[str, list[float]] = {name: [] for name in columns}
    found: dict[str, list[int]] = {name: [] for name in columns}
    for i in range(warmup + queries):
        for name, fn in columns.items():
            started = time.perf_counter()
            n = fn(i)
            ms = (time.perf_counter() - started) * 1000
            if i >= warmup:
                times[name].append(ms)
                found[name].append(n)
    out = {name: summary(values) for name, values in times.items()}
    out[FLOOR] = {
        "p50_ms": round(out[CALL]["p50_ms"] + out[LOOKUP]["p50_ms"], 1),
        "p95_ms": round(out[CALL]["p95_ms"] + out[LOOKUP]["p95_ms"], 1),
    }
    matched = {name: sorted(set(values)) for name, values in found.items()}
    return {"columns": out, "matches_per_query": matched}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 50), 1),
        "p95_ms": round(pct(values, 95), 1),
        "p99_ms": round(pct(values, 99), 1),
        "max_ms": round(max(values), 1),
        "mean_ms": round(sum(values) / len(values), 1),
        "n": len(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--matches", type=int, default=500, help="faces of the query person")
    parser.add_argument("--frames", type=int, default=60, help="frames analysed for the billed-image count")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--heap", default="1g")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "aws-faces.md")
    args = parser.parse_args(argv)
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    logging.getLogger("reko").setLevel(logging.WARNING)  # one "1 image billed" line per search

    from opensearchpy import OpenSearch

    from reko.index.client import INDEX_KINDS, IndexNames

    prefix = f"reko-bench-awsfaces-{uuid.uuid4().hex[:6]}"
    os.environ["REKO_INDEX_PREFIX"] = prefix
    names = IndexNames(prefix)
    report: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with (
        opensearch_node(args.heap) as url,
        tempfile.TemporaryDirectory(prefix="reko-bench-aws-faces-") as tmp,
        aws_loopback(Path(tmp)) as (s3, server),
    ):
        client = OpenSearch(hosts=[url], timeout=300)
        try:
            report["billed"] = billed_per_frame(s3, server, args.frames)
            print(f"billed: {report['billed']}", flush=True)
            server.collections.clear()
            report["load"] = fill(client, names, server, args.faces, args.matches)
            print(f"loaded: {report['load']}", flush=True)
            report["latency"] = latency(client, names, args.queries, args.warmup)
            report["opensearch"] = client.info()["version"]["number"]
        finally:
            for kind in INDEX_KINDS + ("leases",):
                client.indices.delete(index=f"{prefix}-{kind}", params={"ignore": 404})
    report["machine"] = {
        "cpus": os.cpu_count(),
        "arch": platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    report["args"] = {k: str(v) for k, v in vars(args).items()}
    args.out.write_text(render(report))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(args.out.read_text())
    return 0


def render(report: dict[str, Any]) -> str:
    billed, load, lat = report["billed"], report["load"], report["latency"]
    cols = lat["columns"]
    lines = [
        "# Faces on AWS: billed images per frame, search by photo at scale",
        "",
        f"Measured {report['measured_at']} on {report['machine']['cpus']} shared CPUs"
        f" ({report['machine']['arch']}, load average {report['machine']['load_average']} at the end),"
        f" OpenSearch {report['opensearch']} (1 node). Rekognition is the loopback server"
        " (`reko.localdev.rekognition_server`), S3 is moto's server. Run:"
        " `PYTHONPATH=plugins .venv/bin/python bench/bench_aws_faces.py`.",
        "",
        "## 1. Billed images per frame",
        "",
        f"{billed['frames']} frames analysed for faces by `analyse_batch` (backend aws)"
        f" in {billed['wall_s']} s;"
        f" calls the server accepted: {billed['server_calls']}. The batch's threads each found no"
        " collection on their first IndexFaces, raced to create it (one CreateCollection succeeded, the"
        " others were told it exists) and sent their frame again: a call refused for a missing"
        " collection bills nothing, so the run counts one billed image a frame.",
        "",
        "| column | billed images per frame |",
        "|---|---:|",
        f"| floor: DetectFaces + IndexFaces per frame | {billed['floor_billed_per_frame']} |",
        f"| reko: IndexFaces alone (the run's `api_calls.made`) | {billed['billed_per_frame']} |",
        f"| DetectFaces calls per frame (server) | {billed['detect_faces_per_frame']} |",
        "",
        f"Failed frames: {billed['failed']}. IndexFaces answers every face DetectFaces would (FaceRecords"
        " and UnindexedFaces both carry the FaceDetail), so the second call is not needed: half the"
        " images billed.",
        "",
        f"## 2. Search by photo with {load['faces']:,} faces in the collection and the faces index",
        "",
        f"Synthetic faces (not anyone's), {load['target_faces']} of them the query person's; loaded in"
        f" {load['load_s']} s. {cols[FIND]['n']} measured queries per column after warm-up, interleaved; 3"
        " photos (2 of the person, 1 of nobody indexed); threshold 83; MaxFaces 1000. Matches per query:"
        f" {lat['matches_per_query'][FIND]}.",
        "",
        "| column | p50 ms | p95 ms | p99 ms | max ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in (CALL, LOOKUP, FIND):
        c = cols[name]
        lines.append(
            f"| {name} | {c['p50_ms']} | {c['p95_ms']} | {c['p99_ms']} | {c['max_ms']} | {c['mean_ms']} |"
        )
    floor = cols[FLOOR]
    lines.append(f"| {FLOOR} | {floor['p50_ms']} | {floor['p95_ms']} | | | |")
    ratio = round(cols[FIND]["p50_ms"] / floor["p50_ms"], 2) if floor["p50_ms"] else None
    own_p50 = round(cols[FIND]["p50_ms"] - cols[CALL]["p50_ms"], 1)
    lines += [
        "",
        f"find_person / floor at p50: **{ratio}x** (1.0 = nothing but the two parts it cannot avoid)."
        f" reko's own part of find_person (its p50 minus the call's p50): {own_p50} ms, of which the"
        f" lookup is {cols[LOOKUP]['p50_ms']} ms; the lookup's p95 is {cols[LOOKUP]['p95_ms']} ms at"
        f" {load['faces']:,} faces. The call's time here is the loopback server's Python scan of every"
        " stored face on a loaded machine, not Rekognition's latency: the issue's p95 <= 200 ms goal"
        " cannot be judged for AWS without a real collection (on AWS, find_person's p95 ="
        f" Rekognition's SearchFacesByImage p95 + about {cols[LOOKUP]['p95_ms']} ms here).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
