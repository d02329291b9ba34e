"""The analyser seam: one registry of (backend, kind) -> factory, and no backend branches elsewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reko.analysis import base
from reko.analysis.base import check_available, frames_cut_in_process, get_analysis, registered, traits

REPO = Path(__file__).resolve().parents[1]


def test_every_backend_names_what_it_can_run():
    assert registered("aws") == ["text", "faces", "labels"]
    assert "text" in registered("local")
    assert "labels" not in registered("local")
    with pytest.raises(NotImplementedError, match=r"\['labels'\] have no local model yet"):
        check_available("local", ["text", "labels"])
    with pytest.raises(ValueError, match="backend 'gcp' is not one of"):
        check_available("gcp", ["text"])
    with pytest.raises(ValueError, match="backend 'gcp' is not one of"):
        traits("gcp")


def test_traits_replace_backend_branches():
    assert frames_cut_in_process("local") and not frames_cut_in_process("aws")
    assert traits("aws").needs_s3 and traits("aws").billed_per_image
    assert not traits("local").needs_s3 and not traits("local").billed_per_image


def test_a_registered_factory_is_what_get_analysis_returns(monkeypatch):
    calls = []

    def factory(kind, options):
        calls.append((kind, options))
        return base.Analysis(kind, "local", "toy-1", lambda frame: {"Labels": []})

    monkeypatch.setitem(base._FACTORIES, ("local", "labels"), "tests.test_analysis_registry:_factory")
    monkeypatch.setattr(sys.modules[__name__], "_factory", factory, raising=False)
    analysis = get_analysis("local", "labels", {"min_confidence": 70})
    assert (analysis.kind, analysis.backend, analysis.model_version) == ("labels", "local", "toy-1")
    assert calls == [("labels", {"min_confidence": 70})]
    with pytest.raises(ValueError, match="is not a backend"):
        base.register("local", "colours", "x:y")


def test_the_seam_imports_no_backend():
    """reko.aws.rekognition imports the seam; the seam must not import it back (nor boto3)."""
    code = (
        "import sys, reko.analysis.base as b; b.check_available('aws', ['text']);"
        "print(sorted(m for m in sys.modules if m.startswith(('reko.aws', 'boto3', 'reko.analysis.local'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


def test_no_backend_branches_outside_the_registry():
    pattern = re.compile(r"""backend["'\]]*\s*[!=]=\s*["'](local|aws)["']""")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for root in ("plugins", "dags")
        for path in (REPO / root).rglob("*.py")
        if path != REPO / "plugins/reko/analysis/base.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
