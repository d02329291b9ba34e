"""Every DAG imports cleanly and lightly, and carries what operators rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"video_analysis", "video_clips"} <= set(dagbag.dags)


def test_every_dag_is_documented_owned_tagged_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for task in dag.tasks:
            assert task.owner == "reko", (dag_id, task.task_id)
            assert task.retries is not None, (dag_id, task.task_id)
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.description, (dag_id, name)
            assert param.schema.get("type"), (dag_id, name)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_without_heavy_modules(dag_file):
    """Parsing must not pull in models, ffmpeg wrappers or clients, checked in a fresh interpreter.

    Every task process parses its DAG file first, so boto3 and the amazon provider count too
    (~0.1-0.25 CPU-s a process): the media operators and the probe load them only when they run
    on AWS or wait for an `s3://` video. How long a parse takes is the benchmarks' to measure
    (`bench/bench_archive.py` prints it per DAG file); a CPU-time bound here failed on a loaded
    2-core machine at 1.01 s against a quiet 0.65 s, with nothing changed.
    """
    probe = (
        "import sys, runpy; sys.path.insert(0, 'plugins'); import airflow.sdk;"
        f"runpy.run_path({str(dag_file)!r});"
        "heavy = ('rapidocr', 'onnxruntime', 'cv2', 'opensearchpy', 'reko.pipeline', 'reko.media',"
        " 'boto3', 'botocore', 'airflow.providers.amazon.aws.hooks.base_aws', 'reko.aws.operators');"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_local_paths_load_no_provider_filesystem(tmp_path):
    """A task on `file://` paths only must not import every provider's filesystem module first,
    as Airflow's lookup by scheme does (the amazon provider's loads boto3: ~0.25 CPU-s a process)."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    probe = (
        "import sys; sys.path.insert(0, 'plugins'); import airflow.sdk;"
        "from reko.storage import parse_uri, source_fingerprint;"
        f"path = parse_uri({video.as_uri()!r}); print(source_fingerprint(path));"
        "(path.parent / 'report.json').write_text('{}'); assert path.read_bytes() == b'x';"
        "print([m for m in ('boto3', 'botocore', 'airflow.providers.amazon.aws.fs.s3') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    fingerprint, loaded = out.stdout.strip().splitlines()[-2:]
    assert fingerprint.startswith("1:")
    assert (tmp_path / "report.json").read_text() == "{}"
    assert loaded == "[]"


def test_benchmarks_import_nothing_from_the_tests():
    """bench/ measures the shipped code: what it shares with the tests lives in reko.localdev."""
    import ast

    offenders = []
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert offenders == []
