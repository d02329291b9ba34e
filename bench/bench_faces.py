"""Faces: same-person recall at <= 1 % false matches, CPU per 720p frame, search-by-photo latency.

The issue's three measures, on this machine, in one run:

1. **Recall at <= 1 % false matches.** Seed 1 (tuning) and seed 2 (report) of
   `include/sample/make_faces.py` (real photos of 9 people moving and changing scale, 0-5 faces on
   screen; the query photo is a different photo of the person than those in the video) are
   analysed by the real pipeline (`analyse_video`, local backend, analyses ["faces"]) into a
   faces index on a real node. Every indexed face gets the query's distance (exact search) and is
   labelled from the truth (box IoU > 0.5 with a truth face, else "stray"). Recall = target faces
   in the truth matched at the threshold / all target faces in the truth (a face the detector
   missed is a miss); false-match rate = non-target indexed faces at or above the threshold / all
   non-target indexed faces. The threshold is chosen on seed 1 (the lowest similarity whose
   false-match rate is <= 1 %) and reported on seed 2, with the default threshold beside it.
2. **CPU-s per 720p frame** of `LocalFaceAnalyser.detect_faces` (`time.process_time`, every
   thread of the process), by the number of faces in the frame, on the seeds' frames; the floor
   measured in the same run on the same frames: decoding the JPEG only, and decoding plus HOG
   detection with no embedding; beside it the analyser with dlib's own embedder
   (`REKO_FACE_EMBEDDER=dlib`, the reference), and each embedder's CPU-s per face on the frames'
   aligned chips alone.
3. **Search-by-photo latency** with `--faces` (default 100,000) faces indexed: the seeds' real
   faces plus synthetic 128-d vectors (drawn per dimension from the real embeddings' mean and
   spread; they are not faces of anyone, and the report says so). Columns, interleaved: the floor
   (the exact `knn_score` query find_person sends by default, with a precomputed vector,
   opensearch-py), `find_person` in-process (decode + detect + embed the photo + that query), the
   top-k k-NN query (k = 1000) and the radial k-NN query; plus the share of the exact answer each
   approximate one finds. Measured as loaded and again after a force-merge to one segment.

Run (own throw-away node, heap 1 GB): PYTHONPATH=plugins .venv/bin/python bench/bench_faces.py
Writes bench/results/faces.md and faces.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO / "include" / "sample"))

TUNE_SEED, REPORT_SEED = 1, 2
MAX_FMR = 0.01
GOAL_RECALL = 0.95
GOAL_CPU_S = 0.3
GOAL_P95_MS = 200.0
IOU_MATCH = 0.5
MAX_MATCHES = 1000
FULL = "LocalFaceAnalyser.detect_faces (default: numpy embedder)"
FULL_DLIB = "LocalFaceAnalyser.detect_faces (REKO_FACE_EMBEDDER=dlib, reference)"
FLOOR = "floor: exact knn_score query (find_person's), precomputed vector"
TOPK = "top-k k-NN query (k=1000, min_score), precomputed vector"
RADIAL = "radial k-NN query (min_score), precomputed vector"
FIND = "find_person in-process (photo -> embedding -> exact query)"
PHOTOS = REPO / "include" / "sample" / "faces"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def corners(bbox: dict[str, float]) -> tuple[float, ...]:
    return (bbox["left"], bbox["top"], bbox["left"] + bbox["width"], bbox["top"] + bbox["height"])


from reko.localdev.opensearch import running_node as opensearch_node  # noqa: E402

# --- 1. recall at <= 1 % false matches ------------------------------------------------------------


def analyse_seed(
    client: Any, names: Any, seed: int, root: Path, duration_s: float, interval_s: float
) -> dict:
    """Compose the seed's video, analyse it with the real pipeline; its truth, job and timings."""
    import make_faces

    from reko.pipeline import RunConfig, analyse_video, probe_video

    started = time.monotonic()
    video, truth_path = make_faces.make(seed, root / "videos", duration_s, interval_s)
    made_s = time.monotonic() - started
    cfg = RunConfig.from_params(
        {
            "video_uri": video.as_uri(),
            "backend": "local",
            "frame_interval_s": interval_s,
            "analyses": ["faces"],
            "min_confidence": 50,
        }
    )
    job = probe_video(cfg, (root / "work").as_uri())
    cpu0, wall0 = time.process_time(), time.monotonic()
    result = analyse_video(client, names, job, dag_id="bench", run_id=f"faces-s{seed}")
    return {
        "seed": seed,
        "truth": json.loads(truth_path.read_text()),
        "job": job,
        "result": result,
        "make_s": round(made_s, 1),
        "analyse_wall_s": round(time.monotonic() - wall0, 2),
        "analyse_cpu_s": round(time.process_time() - cpu0, 2),
    }


def scored_faces(client: Any, names: Any, seed_run: dict) -> dict[str, Any]:
    """Every indexed face of the seed's video with its distance to the query photo and its label."""
    from reko.faces.local import embed_photo
    from reko.faces.similarity import l2_from_lucene_score
    from reko.index.faces import exact_query

    truth = seed_run["truth"]
    video_id = seed_run["job"].store.video_id
    query = embed_photo((PHOTOS / f"{truth['query_photo']}.jpg").read_bytes())
    body = exact_query(query.embedding, 10.0, video_ids=[video_id], size=10_000)
    hits = client.search(index=names.faces, body=body)["hits"]["hits"]
    faces = []
    for hit in hits:
        src = hit["_source"]
        truth_faces = truth["frames"][src["frame_index"]]["faces"]
        box = corners(src["bbox"])
        best = max(truth_faces, key=lambda f: iou(box, f["box"]), default=None)
        label = best["person"] if best and iou(box, best["box"]) > IOU_MATCH else "stray"
        faces.append(
            {
                "frame_index": src["frame_index"],
                "box": box,
                "distance": l2_from_lucene_score(hit["_score"]),
                "label": label,
            }
        )
    target_truth = [
        (f["index"], face["box"])
        for f in truth["frames"]
        for face in f["faces"]
        if face["person"] == truth["target_person"]
    ]
    all_truth = sum(len(f["faces"]) for f in truth["frames"])
    detected = sum(1 for f in faces if f["label"] != "stray")
    return {
        "faces": faces,
        "target_truth": target_truth,
        "truth_faces": all_truth,
        "detected": detected,
        "strays": sum(1 for f in faces if f["label"] == "stray"),
        "target": truth["target_person"],
    }


def rates(scored: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Recall of the target's truth faces and false-match rate of the other faces at a threshold."""
    from reko.faces.similarity import similarity

    target = scored["target"]
    matched = [f for f in scored["faces"] if similarity(f["distance"]) >= threshold]
    hits = 0
    for index, box in scored["target_truth"]:
        if any(
            f["frame_index"] == index and f["label"] == target and iou(f["box"], box) > IOU_MATCH
            for f in matched
        ):
            hits += 1
    others = [f for f in scored["faces"] if f["label"] != target]
    false = [f for f in matched if f["label"] != target]
    frames_with_target = {i for i, _ in scored["target_truth"]}
    frames_found = {f["frame_index"] for f in matched if f["label"] == target}
    return {
        "threshold": threshold,
        "recall": hits / len(scored["target_truth"]) if scored["target_truth"] else 0.0,
        "target_faces": len(scored["target_truth"]),
        "matched_target_faces": hits,
        "false_matches": len(false),
        "other_faces": len(others),
        "fmr": len(false) / len(others) if others else 0.0,
        "frame_recall": len(frames_found) / len(frames_with_target) if frames_with_target else 0.0,
    }


def tune(scored: dict[str, Any]) -> float:
    """The lowest similarity threshold (0.1 steps) whose false-match rate is <= MAX_FMR."""
    best = 100.0
    for tenth in range(1000, -1, -1):
        threshold = tenth / 10
        if rates(scored, threshold)["fmr"] > MAX_FMR:
            break
        best = threshold
    return best


# --- 2. CPU per frame -----------------------------------------------------------------------------


def cpu_per_frame(frames: list[tuple[bytes, int]], repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """CPU-s per frame of decode only, decode + HOG, and the whole analyser with each embedder, by
    faces in the frame; and each embedder's CPU-s per face on the frame's chips alone."""
    import numpy as np

    from reko.analysis.local_text import _decode
    from reko.faces import local

    analyser = local.LocalFaceAnalyser(embedder_name="numpy")
    reference = local.LocalFaceAnalyser(embedder_name="dlib")
    for a in (analyser, reference):
        a.detect_faces(frames[0][0])  # models loaded before timing

    def hog_only(data: bytes) -> None:
        rgb = _decode(data)
        local._faces(np.asarray(rgb), analyser.times_upsampled, with_embeddings=False)

    columns: dict[str, Callable[[bytes], Any]] = {
        "floor: decode only": _decode,
        "floor: decode + HOG detection (no embedding)": hog_only,
        FULL: analyser.detect_faces,
        FULL_DLIB: reference.detect_faces,
    }
    out: dict[str, dict[int, list[float]]] = {name: {} for name in columns}
    embed: dict[str, list[float]] = {"numpy": [], "dlib": []}  # CPU-s per face, one per frame
    models = {name: local._models(name) for name in embed}
    for data, n_faces in frames:
        for name, fn in columns.items():
            for _ in range(repeats):
                cpu = time.process_time()
                fn(data)
                out[name].setdefault(n_faces, []).append(time.process_time() - cpu)
        rgb = _decode(data)
        m = models["numpy"]
        grey = np.ascontiguousarray(rgb.mean(axis=2, dtype=np.float32).astype(np.uint8))
        rects, _, _ = m.detector.run(grey, analyser.times_upsampled, 0.0)
        chips = [
            m.dlib.get_face_chip(rgb, m.shapes(grey, r), size=local.CHIP_SIZE, padding=local.CHIP_PADDING)
            for r in rects
        ]
        if chips:
            for name, model in models.items():
                cpu = time.process_time()
                with model.lock:
                    model.embed(chips)
                embed[name].append((time.process_time() - cpu) / len(chips))
    return out, embed


# --- 3. search latency ----------------------------------------------------------------------------


def synthetic_vectors(real: list[list[float]], count: int, seed: int) -> Iterator[list[float]]:
    """Vectors drawn per dimension from the real embeddings' mean and standard deviation."""
    import numpy as np

    arr = np.asarray(real, dtype=np.float64)
    mean, std = arr.mean(axis=0), arr.std(axis=0)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield [round(float(v), 6) for v in rng.normal(mean, std)]


def load_synthetic(client: Any, names: Any, real: list[list[float]], count: int, seed: int) -> dict[str, Any]:
    from reko.index.bulk import bulk_load

    def actions() -> Iterator[dict[str, Any]]:
        for n, vector in enumerate(synthetic_vectors(real, count, seed)):
            video, frame = divmod(n, 500)
            yield {
                "_index": names.faces,
                "_id": f"synthetic-{video:05d}:{frame:07d}:face:000",
                "_source": {
                    "video_id": f"synthetic-{video:05d}",
                    "frame_index": frame,
                    "timestamp_ms": frame * 500,
                    "ordinal": 0,
                    "confidence": 90.0,
                    "bbox": {"left": 0.4, "top": 0.3, "width": 0.1, "height": 0.18},
                    "embedding": vector,
                    "frame_uri": "",
                    "backend": "local",
                    "model": "synthetic",
                },
            }

    started = time.monotonic()
    written = bulk_load(client, actions()).written
    client.indices.refresh(index=names.faces)
    return {"written": written, "load_s": round(time.monotonic() - started, 1)}


def latency(
    client: Any, names: Any, photos: list[bytes], queries: int, warmup: int, threshold: float
) -> dict:
    from reko.faces.local import embed_photo
    from reko.faces.search import find_person
    from reko.faces.similarity import distance_for
    from reko.index.faces import exact_query, knn_query

    vectors = [embed_photo(p).embedding for p in photos]
    max_d = distance_for(threshold)
    took: list[float] = []

    def floor(i: int) -> set[str]:
        body = exact_query(vectors[i % len(vectors)], max_d, size=MAX_MATCHES)
        resp = client.search(index=names.faces, body=body)
        took.append(resp["took"])
        return {h["_id"] for h in resp["hits"]["hits"]}

    def top_k(i: int) -> set[str]:
        body = knn_query(vectors[i % len(vectors)], max_d, size=MAX_MATCHES)
        return {h["_id"] for h in client.search(index=names.faces, body=body)["hits"]["hits"]}

    def radial(i: int) -> set[str]:
        body = knn_query(vectors[i % len(vectors)], max_d, size=MAX_MATCHES, radial=True)
        return {h["_id"] for h in client.search(index=names.faces, body=body)["hits"]["hits"]}

    def in_process(i: int) -> set[str]:
        result = find_person(client, names, photos[i % len(photos)], threshold=threshold)
        return {face["face"] for v in result["videos"] for f in v["frames"] for face in f["faces"]}

    columns = {FLOOR: floor, FIND: in_process, TOPK: top_k, RADIAL: radial}
    times: dict[str, list[float]] = {name: [] for name in columns}
    cpu_ms: dict[str, list[float]] = {name: [] for name in columns}
    answers: dict[str, list[set[str]]] = {name: [] for name in columns}
    order = list(columns)
    for i in range(warmup + queries):
        rotated = order[i % len(order) :] + order[: i % len(order)]
        for name in rotated:
            cpu, started = time.process_time(), time.perf_counter()
            found = columns[name](i)
            ms = (time.perf_counter() - started) * 1000
            if i >= warmup:
                times[name].append(ms)
                cpu_ms[name].append((time.process_time() - cpu) * 1000)
                answers[name].append(found)
    exact_sets = answers[FLOOR]

    def agreement(name: str) -> float:
        pairs = zip(answers[name], exact_sets, strict=True)
        return statistics.mean(len(a & e) / len(e) if e else 1.0 for a, e in pairs)

    return {
        "times": times,
        "client_cpu_ms": {name: statistics.mean(v) for name, v in cpu_ms.items()},
        "recall_vs_exact": {
            "top-k": agreement(TOPK),
            "radial": agreement(RADIAL),
            "find_person": agreement(FIND),
        },
        "took_ms": took[warmup:],
    }


def latency_report(client: Any, names: Any, lat: dict[str, Any]) -> dict[str, Any]:
    stats = client.indices.stats(index=names.faces)["indices"][names.faces]["primaries"]
    return {
        "segments": stats["segments"]["count"],
        "store_mb": round(stats["store"]["size_in_bytes"] / 2**20, 1),
        "recall_vs_exact": lat["recall_vs_exact"],
        "columns": {
            name: {
                "p50": pct(v, 50),
                "p95": pct(v, 95),
                "p99": pct(v, 99),
                "max": max(v),
                "mean": statistics.mean(v),
                "client_cpu_ms": lat["client_cpu_ms"][name],
            }
            for name, v in lat["times"].items()
        },
        "took_p50": pct(lat["took_ms"], 50),
        "took_p95": pct(lat["took_ms"], 95),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


# --- report ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000, help="faces indexed for the latency measure")
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--interval-s", type=float, default=0.4)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--cpu-frames", type=int, default=60, help="frames timed for CPU (per seed)")
    parser.add_argument("--heap", default="1g")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "faces.md")
    args = parser.parse_args(argv)
    logging.getLogger("opensearch").setLevel(logging.WARNING)

    from opensearchpy import OpenSearch

    from reko.faces.similarity import match_threshold
    from reko.index.client import INDEX_KINDS, IndexNames

    names = IndexNames(f"reko-bench-faces-{uuid.uuid4().hex[:6]}")
    report: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with opensearch_node(args.heap) as url, tempfile.TemporaryDirectory(prefix="reko-bench-faces-") as tmp:
        client = OpenSearch(hosts=[url], timeout=300)
        try:
            runs = {}
            for seed in (TUNE_SEED, REPORT_SEED):
                runs[seed] = analyse_seed(
                    client, names, seed, Path(tmp) / f"s{seed}", args.duration_s, args.interval_s
                )
                print(f"seed {seed}: analysed in {runs[seed]['analyse_wall_s']} s", flush=True)
            scored = {seed: scored_faces(client, names, run) for seed, run in runs.items()}
            chosen = tune(scored[TUNE_SEED])
            default = match_threshold()
            accuracy = {
                seed: {
                    "chosen": rates(scored[seed], chosen),
                    "default": rates(scored[seed], default),
                    "truth_faces": scored[seed]["truth_faces"],
                    "detected": scored[seed]["detected"],
                    "strays": scored[seed]["strays"],
                    "same_max_distance": max(
                        (
                            f["distance"]
                            for f in scored[seed]["faces"]
                            if f["label"] == scored[seed]["target"]
                        ),
                        default=0,
                    ),
                    "other_min_distance": min(
                        (
                            f["distance"]
                            for f in scored[seed]["faces"]
                            if f["label"] != scored[seed]["target"]
                        ),
                        default=0,
                    ),
                }
                for seed in runs
            }
            report["accuracy"] = {"chosen_threshold": chosen, "default_threshold": default, "seeds": accuracy}
            print(json.dumps(report["accuracy"], default=str)[:800], flush=True)

            frames = []
            for run in runs.values():
                store = run["job"].store
                for f in run["truth"]["frames"][: args.cpu_frames]:
                    frames.append((store.frame(f["index"]).read_bytes(), len(f["faces"])))
            cpu, embed = cpu_per_frame(frames, repeats=1)
            report["cpu"] = {name: {str(k): v for k, v in by.items()} for name, by in cpu.items()}
            report["embed_cpu_s_per_face"] = embed
            report["cpu_load_average"] = [round(v, 2) for v in os.getloadavg()]
            print("cpu measured", flush=True)

            real = []
            for hit in client.search(index=names.faces, body={"size": 10_000, "_source": ["embedding"]})[
                "hits"
            ]["hits"]:
                real.append(hit["_source"]["embedding"])
            indexed_real = len(real)
            load = load_synthetic(client, names, real, max(0, args.faces - indexed_real), seed=7)
            count = client.count(index=names.faces)["count"]
            print(f"indexed {count} faces ({load})", flush=True)
            photos = [
                (PHOTOS / f"{p}.jpg").read_bytes()
                for p in ("obama-1", "obama-2", "obama-3", "biden-1", "collins-1")
            ]
            report["latency"] = {
                "faces_indexed": count,
                "real_faces": indexed_real,
                "synthetic_faces": load["written"],
                "load_s": load["load_s"],
                "as_loaded": latency_report(
                    client, names, latency(client, names, photos, args.queries, args.warmup, default)
                ),
            }
            started = time.monotonic()
            client.indices.forcemerge(index=names.faces, max_num_segments=1, request_timeout=1800)
            report["latency"]["merge_s"] = round(time.monotonic() - started, 1)
            report["latency"]["merged"] = latency_report(
                client, names, latency(client, names, photos, args.queries, args.warmup, default)
            )
            report["runs"] = {
                seed: {k: run[k] for k in ("make_s", "analyse_wall_s", "analyse_cpu_s")}
                for seed, run in runs.items()
            }
            health = client.cluster.health()
            report["node"] = {
                "version": client.info()["version"]["number"],
                "status": health["status"],
                "heap": args.heap,
            }
        finally:
            for kind in INDEX_KINDS + ("leases",):
                client.indices.delete(index=f"{names.prefix}-{kind}", params={"ignore": 404})
                client.indices.delete_index_template(name=f"{names.prefix}-{kind}", params={"ignore": 404})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.out.write_text(render(report, args))
    print(args.out.read_text())
    return 0


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    acc, lat = report["accuracy"], report["latency"]
    load = os.getloadavg()
    lines = [
        "# Faces: recall at <= 1 % false matches, CPU per 720p frame, search by photo",
        "",
        f"Measured {report['measured_at']} on {os.cpu_count()} shared CPUs"
        f" ({platform.processor() or platform.machine()}, load average {[round(v, 2) for v in load]}"
        f" at the end), OpenSearch {report['node']['version']}"
        f" (1 node, heap {report['node']['heap']}, k-NN plugin 2.19.1.0, lucene HNSW, l2). Run:"
        " `PYTHONPATH=plugins .venv/bin/python bench/bench_faces.py`.",
        "",
        "## 1. Same-person recall at <= 1 % false matches",
        "",
        f"Videos: `include/sample/make_faces.py` seeds {TUNE_SEED} (tuning) and {REPORT_SEED} (report),"
        f" {args.duration_s:g} s of 1280x720 at 25 fps, captured every {args.interval_s:g} s, 0-5 real faces"
        " on screen (9 people), faces 75-150 px tall, moving, growing or shrinking, tilted +-6 degrees,"
        " lit x0.65-1.2, half of them blurred 1-2 px."
        " The query photo of the target is not one of the photos in the video. Analysed by the real"
        ' pipeline (`analyse_video`, local, analyses ["faces"]).',
        "",
        f"Threshold chosen on seed {TUNE_SEED}: the lowest similarity with a false-match rate <= 1 %:"
        f" **{acc['chosen_threshold']:g}**; the default (`REKO_FACE_MATCH_THRESHOLD`) is"
        f" {acc['default_threshold']:g}.",
        "",
        "| seed | threshold | recall (target faces) | frame recall | false matches / other faces | FMR |"
        " detected / truth faces | stray detections | max same-person d | min other d |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, a in acc["seeds"].items():
        for key in ("chosen", "default"):
            r = a[key]
            lines.append(
                f"| {seed}{' (tuning)' if int(seed) == TUNE_SEED else ' (report)'} |"
                f" {r['threshold']:g} ({key}) |"
                f" {r['recall']:.3f} ({r['matched_target_faces']}/{r['target_faces']}) |"
                f" {r['frame_recall']:.3f} | {r['false_matches']}/{r['other_faces']} | {r['fmr']:.3%} |"
                f" {a['detected']}/{a['truth_faces']} | {a['strays']} |"
                f" {a['same_max_distance']:.3f} | {a['other_min_distance']:.3f} |"
            )
    report_seed = acc["seeds"][REPORT_SEED]["chosen"]
    met = report_seed["recall"] >= GOAL_RECALL and report_seed["fmr"] <= MAX_FMR
    lines += [
        "",
        f"**Goal recall >= {GOAL_RECALL} at <= 1 % false matches on the report seed:"
        f" {'met' if met else 'not met'}**"
        f" ({report_seed['recall']:.3f} at FMR {report_seed['fmr']:.2%}). Recall counts a face the detector"
        " missed as a miss: detection, not recognition, is what limits it (see detected / truth faces).",
        "",
        "## 2. CPU-s per 720p frame",
        "",
        "`time.process_time()` (all threads) per frame on the seeds' captured frames (JPEG, 1280x720),"
        " by faces in the frame's truth; the floors on the same frames in the same run.",
        "",
    ]
    counts = sorted({int(k) for by in report["cpu"].values() for k in by})
    lines.append("| column | " + " | ".join(f"{n} faces" for n in counts) + " | all frames (mean) |")
    lines.append("|---|" + "---:|" * (len(counts) + 1))
    for name, by in report["cpu"].items():
        cells = []
        for n in counts:
            v = by.get(str(n), [])
            cells.append(f"{statistics.mean(v):.3f} (n={len(v)})" if v else "-")
        every = [x for v in by.values() for x in v]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {statistics.mean(every):.3f} |")
    full = report["cpu"][FULL]
    worst = max((statistics.mean(v) for v in full.values()), default=0)
    embed = {name: statistics.mean(v) for name, v in report["embed_cpu_s_per_face"].items()}
    frames_timed = len(report["embed_cpu_s_per_face"]["numpy"])
    lines += [
        "",
        f"**Goal <= {GOAL_CPU_S} CPU-s per frame with up to 5 faces: "
        f"{'met' if worst <= GOAL_CPU_S else 'not met'}** (worst face count's mean {worst:.3f} CPU-s,"
        " numpy embedder; load average"
        f" {report['cpu_load_average']} after the CPU section).",
        "",
        "The embedding alone, on the same frames' aligned 150 px chips (one batch per frame,"
        f" {frames_timed} frames with faces): **numpy {embed['numpy']:.4f} CPU-s per face**, dlib"
        f" {embed['dlib']:.4f} CPU-s per face ({embed['dlib'] / embed['numpy']:.1f}x). Both run the"
        " same ResNet with the same weights (`reko.faces.resnet` parses them from dlib's .dat; one"
        " OpenBLAS thread); their vectors agree to float32 rounding, gated at 1e-3 per component in"
        " tests/test_faces.py. A frame costs about decode + HOG + (landmarks, chip, embedding) x faces.",
        "",
    ]
    lines += [
        f"## 3. Search by photo with {lat['faces_indexed']:,} faces indexed",
        "",
        f"{lat['real_faces']:,} real faces from the two seeds plus"
        f" **{lat['synthetic_faces']:,} synthetic vectors** (drawn per dimension from the real embeddings'"
        " mean and spread: not faces of anyone) in one index, loaded by `bulk_load` in"
        f" {lat['load_s']} s. {args.queries} measured queries per column after {args.warmup} warm-up,"
        " interleaved; 5 query photos (3 of the target, 2 others), threshold"
        f" {acc['default_threshold']:g}. Wall times; `client CPU` is this process's CPU per query"
        " (embedding the photo is nearly all of find_person's). Measured as loaded, then again after a"
        f" force-merge to one segment ({lat['merge_s']} s).",
        "",
    ]
    for key, title in (("as_loaded", "As loaded"), ("merged", "After force-merge")):
        part = lat[key]
        lines += [
            f"{title} ({part['segments']} segments, {part['store_mb']} MB; load average"
            f" {part['load_average']} after it):",
            "",
            "| column | p50 ms | p95 ms | p99 ms | max ms | mean ms | client CPU ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, c in part["columns"].items():
            lines.append(
                f"| {name} | {c['p50']:.1f} | {c['p95']:.1f} | {c['p99']:.1f} | {c['max']:.1f}"
                f" | {c['mean']:.1f} | {c['client_cpu_ms']:.1f} |"
            )
        lines += [
            "",
            f"OpenSearch's own `took` for the floor: p50 {part['took_p50']} ms, p95 {part['took_p95']} ms."
            " Share of the exact answer's faces found (mean over queries): top-k"
            f" {part['recall_vs_exact']['top-k']:.1%}, radial {part['recall_vs_exact']['radial']:.1%}"
            " (find_person, from the photo rather than the stored vector:"
            f" {part['recall_vs_exact']['find_person']:.1%}).",
            "",
        ]
    p95 = max(lat[k]["columns"][FIND]["p95"] for k in ("as_loaded", "merged"))
    lines += [
        f"**Goal p95 <= {GOAL_P95_MS:g} ms at 100,000 faces (find_person):"
        f" {'met' if p95 <= GOAL_P95_MS else 'not met'}** (the worse of the two: {p95:.1f} ms). The"
        " HTTP route (`POST /reko/api/faces/search`) adds the app's overhead (not measured here;"
        " bench_search measured the app's routes at ~15-25 ms p95 over the raw query).",
        "",
        "Analysis runs: "
        + ", ".join(
            f"seed {s}: video made in {r['make_s']} s, analysed in {r['analyse_wall_s']} s wall"
            f" / {r['analyse_cpu_s']} CPU-s"
            for s, r in report["runs"].items()
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
