#!/usr/bin/env python3
"""Bulk loader throughput against per-document indexing on a real OpenSearch node.

Why: the indexer writes one document per detection, tens of thousands per video; the issue asks
for the bulk loader to index at least 10x faster than one `client.index` call per document.
Both are measured in the same run on the same node (ratios, not absolute numbers, are what
carry over to another machine), interleaved over `--reps` rounds, medians reported:

* bulk: `reko.index.bulk.bulk_load` with its defaults (REKO_BULK_MAX_BYTES, REKO_BULK_MAX_DOCS)
  over `--docs` documents;
* per-document: `client.index(index, id, body)` over a `--per-doc` sample;
* reference: opensearch-py's `helpers.streaming_bulk` (500 actions / 5 MB chunks, what the
  pipeline used before), over the same `--docs`.

Documents are built by `reko.index.docs.detection_docs` from Rekognition-shaped DetectText
responses (5 words a frame), into indices created from the shipped templates under a throw-away
prefix, through the client the pipeline uses (`reko.index.client.get_client`, the opensearch
provider's hook), with the client's per-request INFO log off for all three. Each round writes new
ids, so every run creates documents (no overwrites).

Run:  PYTHONPATH=plugins .venv/bin/python bench/bench_bulk.py  (OPENSEARCH_URL=... reuses a running node)
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
GOAL = 10.0


def detection_actions(index: str, video_id: str, count: int, words: int = 5) -> list[dict[str, Any]]:
    """`count` documents, `words` a frame, shaped as the pipeline indexes them."""
    from reko.localdev.synthetic import detection_actions as by_frames

    return list(itertools.islice(by_frames(index, video_id, -(-count // words), words), count))


def timed(fn) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000, help="documents per bulk round")
    parser.add_argument("--per-doc", type=int, default=1_000, help="documents per per-document round")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bulk.json")
    args = parser.parse_args()

    with opensearch_node() as url:
        return run(args, url)


from reko.localdev.opensearch import running_node as opensearch_node  # noqa: E402 - others import it here


def run(args: argparse.Namespace, url: str) -> int:
    prefix = f"reko-bench-{uuid.uuid4().hex[:8]}"
    os.environ["REKO_INDEX_PREFIX"] = prefix
    from opensearchpy.helpers import streaming_bulk

    from reko.config import bulk_max_bytes, bulk_max_docs
    from reko.index.bulk import bulk_load
    from reko.index.client import INDEX_KINDS, IndexNames, ensure_templates, get_client
    from reko.localdev.airflow_services import opensearch_connection

    os.environ.setdefault("AIRFLOW_CONN_OPENSEARCH_DEFAULT", opensearch_connection(url))
    # one INFO line per request would bill logging to the per-document baseline, not HTTP
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    client = get_client()
    names = IndexNames(prefix)
    ensure_templates(client, names)
    index = names.detections
    rounds: list[dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            bulk_actions = detection_actions(index, f"bulk-{rep}", args.docs)
            single = detection_actions(index, f"single-{rep}", args.per_doc)
            helper_actions = detection_actions(index, f"helper-{rep}", args.docs)

            bulk_s, result = timed(lambda a=bulk_actions: bulk_load(client, a))
            assert result.indexed == args.docs, result

            def one_by_one(actions=single) -> int:
                for a in actions:
                    client.index(index=a["_index"], id=a["_id"], body=a["_source"])
                return len(actions)

            single_s, _ = timed(one_by_one)

            def helper(actions=helper_actions) -> int:
                ok = 0
                for done, _ in streaming_bulk(client, actions, chunk_size=500, max_chunk_bytes=5 << 20):
                    ok += done
                return ok

            helper_s, helper_ok = timed(helper)
            assert helper_ok == args.docs
            rounds.append(
                {
                    "bulk_docs_per_s": args.docs / bulk_s,
                    "bulk_requests": result.requests,
                    "per_doc_docs_per_s": args.per_doc / single_s,
                    "streaming_bulk_docs_per_s": args.docs / helper_s,
                    "bulk_s": bulk_s,
                    "per_doc_s": single_s,
                    "streaming_bulk_s": helper_s,
                }
            )
            print(
                f"round {rep + 1}: bulk {args.docs / bulk_s:,.0f} docs/s ({result.requests} requests),"
                f" per-doc {args.per_doc / single_s:,.0f} docs/s,"
                f" streaming_bulk {args.docs / helper_s:,.0f} docs/s",
                flush=True,
            )
        client.indices.refresh(index=index)
        stored = client.count(index=index)["count"]
        expected = args.reps * (2 * args.docs + args.per_doc)
        assert stored == expected, f"{stored} documents in {index}, expected {expected}"
        avg_doc_bytes = sum(len(json.dumps(a["_source"])) for a in bulk_actions) / len(bulk_actions)
        version = client.info()["version"]["number"]
    finally:
        for kind in INDEX_KINDS:
            client.indices.delete(index=f"{prefix}-{kind}", params={"ignore": 404})
            client.indices.delete_index_template(name=f"{prefix}-{kind}", params={"ignore": 404})

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    bulk, single = median("bulk_docs_per_s"), median("per_doc_docs_per_s")
    helper = median("streaming_bulk_docs_per_s")
    ratio = bulk / single
    report = {
        "benchmark": "bulk",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "opensearch": {"url": url, "version": version},
        "settings": {
            "docs_per_bulk_round": args.docs,
            "docs_per_per_doc_round": args.per_doc,
            "rounds": args.reps,
            "max_bytes": bulk_max_bytes(),
            "max_docs": bulk_max_docs(),
            "avg_doc_json_bytes": round(avg_doc_bytes),
        },
        "rounds": rounds,
        "median": {
            "bulk_docs_per_s": bulk,
            "per_doc_docs_per_s": single,
            "streaming_bulk_docs_per_s": helper,
        },
        "ratio_bulk_over_per_doc": ratio,
        "ratio_bulk_over_streaming_bulk": bulk / helper,
        "goal": {"ratio_bulk_over_per_doc_at_least": GOAL, "met": ratio >= GOAL},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# Bulk loader vs per-document indexing",
        "",
        f"Measured {report['measured_at']} on {report['machine']['cpus']} shared CPUs, OpenSearch {version}"
        f" (single local node), {args.reps} interleaved rounds, medians.",
        "Documents: detection documents as the pipeline builds them"
        f" (~{round(avg_doc_bytes)} bytes of JSON each).",
        f"Loader settings: max_bytes={bulk_max_bytes():,}, max_docs={bulk_max_docs():,}.",
        "",
        "| method | documents per round | docs/s (median) |",
        "|---|---:|---:|",
        f"| `reko.index.bulk.bulk_load` | {args.docs:,} | {bulk:,.0f} |",
        f"| `helpers.streaming_bulk` (500 / 5 MB chunks, reference) | {args.docs:,} | {helper:,.0f} |",
        f"| `client.index` per document | {args.per_doc:,} | {single:,.0f} |",
        "",
        f"**bulk / per-document = {ratio:.1f}x** (goal >= {GOAL:g}x:"
        f" {'met' if ratio >= GOAL else 'NOT met'});"
        f" bulk / streaming_bulk = {bulk / helper:.2f}x.",
        "",
        "Run: `PYTHONPATH=plugins .venv/bin/python bench/bench_bulk.py` (`OPENSEARCH_URL=...` reuses a node)",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
