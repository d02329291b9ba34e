"""Local text analyser returning Rekognition DetectText-shaped responses.

Pipeline (chosen by measurement, see the analysis report):

1. decode the JPEG/PNG bytes with Pillow (strict: bad, truncated or empty input raises
   ``ValueError``);
2. find text lines with RapidOCR's PP-OCR detection model (DB, ONNX, shipped inside the
   ``rapidocr`` wheel and loaded from an explicit path, so nothing is ever downloaded);
3. read each line crop with Tesseract's LSTM (``eng+kor`` by default; Rekognition cannot
   read Korean) through ``tesserocr``'s in-process API: one ``PyTessBaseAPI`` per process,
   reused for every line, page segmentation mode 7 (single line);
4. map Tesseract's word boxes back into the frame, build LINE and WORD detections with
   normalised ``BoundingBox``/``Polygon`` exactly like Rekognition's ``DetectText``.

Models load lazily, once per process and language set, on the first ``detect_text`` call.
"""

from __future__ import annotations

import io
import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

__all__ = ["LocalTextAnalyser"]

# --- tuning (measured on rendered 720p frames; see tests/fixtures/render_frames.py) -------------
_LINE_HEIGHT = 48  # recognition crops are scaled to this height (px) ...
_MAX_UPSCALE = 3.0  # ... but never enlarged more than this ...
_PAD = 12  # ... and padded by this many background pixels on every side
_MIN_WORD_CONFIDENCE = 10.0  # Tesseract word confidence (0-100) below which a word is dropped
_DET_BOX_THRESH = 0.5  # PP-OCR DB detector box score threshold (RapidOCR default)
_ORT_THREADS = 1  # onnxruntime intra-op threads; frames are parallelised by Airflow tasks

_TESSDATA_CANDIDATES = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
_LANGS_RE = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _find_tessdata() -> Path | None:
    env = os.environ.get("TESSDATA_PREFIX")
    candidates = [env, os.path.join(env, "tessdata")] if env else []
    candidates += list(_TESSDATA_CANDIDATES)
    for cand in candidates:
        if cand and Path(cand, "eng.traineddata").is_file():
            return Path(cand)
    for cand in candidates:
        if cand and Path(cand).is_dir() and any(Path(cand).glob("*.traineddata")):
            return Path(cand)
    return None


def _det_model_path() -> Path:
    import rapidocr

    path = Path(rapidocr.__file__).resolve().parent / "models" / "PP-OCRv6_det_small.onnx"
    if not path.is_file():
        raise RuntimeError(
            f"RapidOCR detection model not found at {path}: the rapidocr wheel must ship it "
            "(models are never downloaded at run time)"
        )
    return path


def _versions(languages: str) -> str:
    from importlib.metadata import version

    import tesserocr

    tess = tesserocr.tesseract_version().split()[1]
    return f"rapidocr-{version('rapidocr')}/PP-OCRv6-det-small+tesseract-{tess}({languages})"


class _Engine:
    """Process-wide models for one language set. Not thread-safe: callers hold ``lock``."""

    def __init__(self, languages: str, tessdata: Path) -> None:
        import numpy  # noqa: F401  (fail early if the stack is incomplete)

        # OpenMP threads inside Tesseract cost more CPU than they save on single lines.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import tesserocr
        from rapidocr import RapidOCR

        self.lock = threading.Lock()
        self.detector = RapidOCR(
            params={
                "Global.use_cls": False,
                "Global.use_rec": False,
                "Global.log_level": "warning",
                "Det.model_path": str(_det_model_path()),
                "Det.box_thresh": _DET_BOX_THRESH,
                "EngineConfig.onnxruntime.intra_op_num_threads": _ORT_THREADS,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
        self.tess = tesserocr.PyTessBaseAPI(
            path=str(tessdata) + os.sep,
            lang=languages,
            psm=tesserocr.PSM.SINGLE_LINE,
            oem=tesserocr.OEM.LSTM_ONLY,
        )
        # Crops are scaled to a known size; tell Tesseract so it does not guess (and warn).
        self.tess.SetVariable("user_defined_dpi", "300")
        self.tesserocr = tesserocr

    # -- detection --------------------------------------------------------------------------
    def detect_lines(self, bgr):
        import numpy as np

        out = self.detector(bgr, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(out, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return []
        return [np.asarray(b, dtype=np.float32).reshape(4, 2) for b in boxes]

    # -- recognition ------------------------------------------------------------------------
    def read_line(self, gray, quad):
        """Read one detected line. Returns [(text, confidence, corners(4x2) in frame px)]."""
        import cv2
        import numpy as np

        quad = _order_quad(quad)
        w = int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))))
        h = int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
        if w < 4 or h < 4:
            return []
        dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        m = cv2.getPerspectiveTransform(quad, dst)
        crop = cv2.warpPerspective(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        rotated = h >= 1.5 * w  # vertical text: read it rotated, like RapidOCR does
        if rotated:
            crop = np.ascontiguousarray(np.rot90(crop))
        ch, cw = crop.shape
        scale = min(_LINE_HEIGHT / ch, _MAX_UPSCALE)
        if abs(scale - 1.0) > 0.05:
            interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
            crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=interp)
        else:
            scale = 1.0
        # Normalise polarity to dark text on a light background (what Tesseract is trained on):
        # the crop's border is background.
        border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
        if float(np.median(border)) < 128:
            crop = 255 - crop
        bg = int(np.median(np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])))
        crop = cv2.copyMakeBorder(crop, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_CONSTANT, value=bg)

        api = self.tess
        api.SetImageBytes(crop.tobytes(), crop.shape[1], crop.shape[0], 1, crop.shape[1])
        api.SetSourceResolution(300)
        api.Recognize()
        ri = api.GetIterator()
        words = []
        level = self.tesserocr.RIL.WORD
        if ri is not None:
            for r in self.tesserocr.iterate_level(ri, level):
                text = r.GetUTF8Text(level)
                if text is None:
                    continue
                bbox = r.BoundingBox(level)
                if bbox is None:
                    continue
                words.append((text, float(r.Confidence(level)), bbox))
        api.Clear()

        inv = np.linalg.inv(m)
        result = []
        for text, conf, (x0, y0, x1, y1) in words:
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
            pts = (pts - _PAD) / scale  # back to crop pixels (possibly rotated)
            if rotated:  # np.rot90 (counter-clockwise): rotated (x, y) <- original (w-1-y... )
                pts = np.stack([w - pts[:, 1], pts[:, 0]], axis=1)
            hom = np.concatenate([pts, np.ones((4, 1))], axis=1) @ inv.T
            frame_pts = hom[:, :2] / hom[:, 2:3]
            result.append((text, conf, frame_pts))
        return result


def _order_quad(quad):
    """Order 4 points as top-left, top-right, bottom-right, bottom-left."""
    import numpy as np

    pts = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = pts[:, 1] - pts[:, 0]
    tl, br = pts[np.argmin(s)], pts[np.argmax(s)]
    tr, bl = pts[np.argmin(d)], pts[np.argmax(d)]
    ordered = np.array([tl, tr, br, bl], dtype=np.float32)
    if len({tuple(p) for p in ordered.tolist()}) < 4:  # degenerate ordering: fall back to angle sort
        c = pts.mean(axis=0)
        ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
        ordered = pts[np.argsort(ang)]
        start = int(np.argmin(ordered.sum(axis=1)))
        ordered = np.roll(ordered, -start, axis=0)
    return ordered


_ENGINES: dict[str, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(languages: str, tessdata: Path) -> _Engine:
    eng = _ENGINES.get(languages)
    if eng is None:
        with _ENGINES_LOCK:
            eng = _ENGINES.get(languages)
            if eng is None:
                eng = _ENGINES[languages] = _Engine(languages, tessdata)
    return eng


def _decode(image: Any):
    """Decode JPEG/PNG bytes to an RGB numpy array, strictly. Raises ValueError on bad input."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (bytearray, memoryview)):
        image = bytes(image)
    if not isinstance(image, bytes):
        raise TypeError(f"image must be JPEG or PNG bytes, not {type(image).__name__}")
    if len(image) == 0:
        raise ValueError("image is empty (0 bytes)")
    if image.startswith(_JPEG_MAGIC):
        fmt = "JPEG"
    elif image.startswith(_PNG_MAGIC):
        fmt = "PNG"
    else:
        raise ValueError(
            f"image is not a JPEG or PNG (first bytes {image[:8]!r}; {len(image)} bytes): "
            "only JPEG and PNG are accepted, as by Rekognition"
        )
    if fmt == "JPEG" and b"\xff\xd9" not in image[-4096:]:
        # Pillow only notices some truncations (and not at all if LOAD_TRUNCATED_IMAGES is set).
        raise ValueError(f"JPEG image is truncated: no end-of-image marker ({len(image)} bytes)")
    try:
        with Image.open(io.BytesIO(image)) as img:
            img.load()
            if img.width < 1 or img.height < 1:
                raise ValueError(f"{fmt} image has no pixels ({img.width}x{img.height})")
            rgb = img.convert("RGB")
    except ValueError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ValueError(f"{fmt} image is {kind} or unreadable ({len(image)} bytes): {exc}") from exc
    return np.asarray(rgb)


def _is_garbage(text: str) -> bool:
    stripped = "".join(text.split())
    if not stripped:
        return True
    return all(unicodedata.category(ch)[0] in "PSZC" for ch in stripped)


def _geometry(pts, width: int, height: int) -> dict:
    """Rekognition Geometry from frame-pixel points (any number >= 1; axis-aligned box)."""
    import numpy as np

    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    x0 = float(np.clip(pts[:, 0].min() / width, 0.0, 1.0))
    x1 = float(np.clip(pts[:, 0].max() / width, 0.0, 1.0))
    y0 = float(np.clip(pts[:, 1].min() / height, 0.0, 1.0))
    y1 = float(np.clip(pts[:, 1].max() / height, 0.0, 1.0))
    x0, x1, y0, y1 = (round(v, 6) for v in (x0, x1, y0, y1))
    return {
        "BoundingBox": {"Width": round(x1 - x0, 6), "Height": round(y1 - y0, 6), "Left": x0, "Top": y0},
        "Polygon": [{"X": x0, "Y": y0}, {"X": x1, "Y": y0}, {"X": x1, "Y": y1}, {"X": x0, "Y": y1}],
    }


def _reading_order(lines: list[dict]) -> list[dict]:
    """Top-to-bottom, then left-to-right within a row (lines whose vertical extents mostly overlap)."""
    lines = sorted(lines, key=lambda ln: (ln["top"] + ln["bottom"], ln["left"]))
    rows: list[list[dict]] = []
    for ln in lines:
        if rows:
            row = rows[-1]
            r_top = min(x["top"] for x in row)
            r_bot = max(x["bottom"] for x in row)
            overlap = min(r_bot, ln["bottom"]) - max(r_top, ln["top"])
            if overlap > 0.5 * min(ln["bottom"] - ln["top"], r_bot - r_top):
                row.append(ln)
                continue
        rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda x: (x["left"], x["top"]))]


class LocalTextAnalyser:
    """Reads text in a frame locally (PP-OCR detection + Tesseract LSTM recognition).

    ``detect_text`` returns the shape of Rekognition's ``DetectText`` response: LINE detections
    first (``Id`` 0..n-1, reading order), then their WORDs (``ParentId`` = the line's ``Id``),
    with ``Confidence`` 0-100 (Tesseract's word confidences; a line's is the mean of its words)
    and ``Geometry`` normalised to the frame. Unlike Rekognition it reads Korean
    (``languages`` is a Tesseract language string such as ``"eng+kor"``) and has no 100-word cap.
    Construction is cheap; models load once per process on first use. Output is deterministic
    for the same input bytes.
    """

    kind = "text"

    def __init__(self, languages: str = "eng+kor") -> None:
        if not isinstance(languages, str) or not _LANGS_RE.match(languages):
            raise ValueError(f"languages must look like 'eng' or 'eng+kor', got {languages!r}")
        self.languages = languages
        self._tessdata = _find_tessdata()
        missing = [
            lang
            for lang in languages.split("+")
            if self._tessdata is None or not (self._tessdata / f"{lang}.traineddata").is_file()
        ]
        if missing:
            raise ValueError(
                f"Tesseract language data not found for {'+'.join(missing)} "
                f"(tessdata: {self._tessdata}; install tesseract-ocr-<lang> or set TESSDATA_PREFIX)"
            )
        self._model_version: str | None = None

    @property
    def model_version(self) -> str:
        if self._model_version is None:
            self._model_version = _versions(self.languages)
        return self._model_version

    def detect_text(self, image: bytes) -> dict:
        import cv2

        rgb = _decode(image)
        height, width = rgb.shape[:2]
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        engine = _engine(self.languages, self._tessdata)
        lines: list[dict] = []
        with engine.lock:
            for quad in engine.detect_lines(bgr):
                words = [
                    (" ".join(text.split()), conf, pts)
                    for text, conf, pts in engine.read_line(gray, quad)
                    if conf >= _MIN_WORD_CONFIDENCE and not _is_garbage(text)
                ]
                if not words:
                    continue
                import numpy as np

                all_pts = np.concatenate([p for _, _, p in words])
                lines.append(
                    {
                        "words": words,
                        "pts": all_pts,
                        "left": float(all_pts[:, 0].min()),
                        "top": float(all_pts[:, 1].min()),
                        "bottom": float(all_pts[:, 1].max()),
                    }
                )
        detections: list[dict] = []
        word_dets: list[dict] = []
        ordered = _reading_order(lines)
        next_id = len(ordered)
        for line_id, ln in enumerate(ordered):
            confs = [c for _, c, _ in ln["words"]]
            detections.append(
                {
                    "DetectedText": " ".join(t for t, _, _ in ln["words"]),
                    "Type": "LINE",
                    "Id": line_id,
                    "Confidence": round(sum(confs) / len(confs), 4),
                    "Geometry": _geometry(ln["pts"], width, height),
                }
            )
            for text, conf, pts in ln["words"]:  # Tesseract reading order
                word_dets.append(
                    {
                        "DetectedText": text,
                        "Type": "WORD",
                        "Id": next_id,
                        "ParentId": line_id,
                        "Confidence": round(conf, 4),
                        "Geometry": _geometry(pts, width, height),
                    }
                )
                next_id += 1
        return {"TextDetections": detections + word_dets, "TextModelVersion": self.model_version}
