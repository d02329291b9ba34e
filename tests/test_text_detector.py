"""reko's PP-OCR detector (reko.analysis.text_detector) against RapidOCR's, on real frames.

The frame-result cache key (``local_text._versions``) did not change when reko's port replaced
RapidOCR's detector: that holds only while both give the same boxes, which the gate below checks
bit for bit (np.array_equal, same dtype and order) on frames of both sample videos, at every
detector input reko makes (whole frame, region of interest, padded small crop).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rapidocr")
pytest.importorskip("tesserocr")
cv2 = pytest.importorskip("cv2")

from reko.analysis import local_text  # noqa: E402
from reko.config import TEXT_DET_SIDE  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.support.finish import finish_s1_video  # noqa: E402

RACE = REPO / "include" / "sample" / "race.mp4"
RACE_FRAMES = (700,)  # riders with bibs, the caption, the clock (one frame a video: ~25 s each)
FINISH_FRAMES = (250,)  # bibs in three depth rows, clock, banner, sign
REGION = (0.0, 0.33, 1.0, 1.0)  # REKO_TEXT_ROI's documented example: skip the sky
OTHER_SIDE = 640  # a non-default REKO_TEXT_DET_SIDE (test_local_text uses it too)


def _frames(path: Path, indices: tuple[int, ...]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok, f"{path.name}: no frame {i}"
        frames.append(frame)
    cap.release()
    return frames


def _rapidocr(side: int):
    """RapidOCR's detector exactly as ``_Engine._detector`` built it before the port."""
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.use_rec": False,
            "Global.log_level": "warning",
            "Det.model_path": str(local_text._det_model_path()),
            "Det.box_thresh": local_text._DET_BOX_THRESH,
            "Det.limit_side_len": side,
            "EngineConfig.onnxruntime.intra_op_num_threads": local_text._ORT_THREADS,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


@pytest.fixture(scope="module")
def frames() -> list[tuple[str, np.ndarray]]:
    race = [(f"race@{i}", f) for i, f in zip(RACE_FRAMES, _frames(RACE, RACE_FRAMES), strict=True)]
    finish = _frames(finish_s1_video(), FINISH_FRAMES)
    return race + [(f"finish-s1@{i}", f) for i, f in zip(FINISH_FRAMES, finish, strict=True)]


@pytest.fixture(scope="module")
def engine():
    tessdata = local_text._find_tessdata()
    if tessdata is None:
        pytest.skip("no Tesseract language data")
    return local_text._Engine("eng", tessdata, TEXT_DET_SIDE)


def test_reko_detector_gives_rapidocr_boxes_bit_for_bit(frames, engine):
    """Every detector input ``detect_lines`` makes, fed to both detectors: the same boxes (values,
    dtype, order), or no boxes from both. Small crops are cut around lines found in the frame, so
    that the ``_SMALL_PAD`` padding path is exercised with text in it."""
    reference: dict[int, object] = {}
    compared = found = padded_found = 0
    mismatches = []
    for name, frame in frames:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (round(v * s) for v, s in zip(REGION, (w, h, w, h), strict=True))
        inputs = [("frame", frame, None), ("region", frame[y0:y1, x0:x1], frame.shape)]
        for q in engine.detect_lines(frame)[:2]:
            cx0, cy0 = (max(0, int(v) - 8) for v in q.min(axis=0))
            cx1, cy1 = (int(v) + 8 for v in q.max(axis=0))
            crop = frame[cy0:cy1, cx0:cx1]
            if min(crop.shape[:2]) < local_text._SMALL_SIDE:
                inputs.append(("small crop", crop, None))
        inputs.append((f"frame@{OTHER_SIDE}", frame, "side"))
        for kind, img, shape in inputs:
            if shape == "side":
                det_img, side, pad = img, OTHER_SIDE, 0
            else:
                det_img, side, pad = engine.detector_input(img, shape)
            assert (pad > 0) == (kind == "small crop"), (name, kind, img.shape)
            if side not in reference:
                reference[side] = _rapidocr(side)
            want = reference[side](det_img, use_det=True, use_cls=False, use_rec=False).boxes
            got = engine._detector(side)(det_img)
            compared += 1
            same = (want is None and got is None) or (
                want is not None
                and got is not None
                and want.dtype == got.dtype
                and want.shape == got.shape
                and np.array_equal(want, got)
            )
            if not same:
                diff = None
                if want is not None and got is not None and want.shape == got.shape:
                    diff = float(np.abs(want.astype(np.float64) - got).max())
                mismatches.append((name, kind, side, None if want is None else want.shape, diff))
            if want is not None:
                found += 1
                padded_found += bool(pad)
    assert not mismatches, mismatches
    # not vacuous: the inputs had text, including padded crops
    assert compared >= 8 and found >= compared - 2 and padded_found >= 3, (compared, found, padded_found)


def test_reading_text_loads_no_rapidocr_machinery_or_omegaconf():
    """A fresh process that builds the engine and reads a frame (whole, region, small crop) never
    imports RapidOCR's pipeline, engines or OmegaConf (their start-up cost is what the port saves);
    plain ``rapidocr`` (the wheel that ships the models) is fine."""
    probe = f"""
import sys
import cv2
from reko.analysis.local_text import LocalTextAnalyser, _engine, _find_tessdata
from reko.config import TEXT_DET_SIDE
cap = cv2.VideoCapture({str(RACE)!r})
cap.set(cv2.CAP_PROP_POS_FRAMES, 400)
ok, frame = cap.read()
assert ok
eng = _engine("eng+kor", _find_tessdata(), TEXT_DET_SIDE)
lines = eng.detect_lines(frame)
eng.detect_lines(frame[240:, :], frame.shape)
q = lines[0]
eng.detect_lines(frame[int(q[:, 1].min()):int(q[:, 1].max()) + 4, int(q[:, 0].min()):int(q[:, 0].max()) + 4])
ok, jpeg = cv2.imencode(".jpg", frame)
out = LocalTextAnalyser().detect_text(jpeg.tobytes())
assert out["TextDetections"], out
banned = ("omegaconf", "rapidocr.main", "rapidocr.inference_engine", "rapidocr.ch_ppocr_")
print(len(lines), [m for m in sys.modules if m.startswith(banned)])
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    n_lines, loaded = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(n_lines) > 0
    assert loaded == "[]"
