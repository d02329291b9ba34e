"""Local text analyser returning Rekognition DetectText-shaped responses.

Pipeline (chosen by measurement, see the analysis report):

1. decode the JPEG/PNG bytes with Pillow (strict: bad, truncated or empty input raises
   ``ValueError``);
2. find text lines with RapidOCR's PP-OCR detection model (DB, ONNX, shipped inside the
   ``rapidocr`` wheel and loaded from an explicit path, so nothing is ever downloaded), run by
   ``text_detector``, reko's port of RapidOCR's detector (same boxes, a fraction of its start-up
   cost); an image under ``_SMALL_SIDE`` px is a crop of one word: it is padded first, and read
   whole if no line is found;
3. read each deskewed line crop with RapidOCR's PP-OCR recogniser (CTC, ONNX, also in the wheel;
   its dictionary is the model's own metadata). On the finish-line footage it reads small,
   blurred bibs far better than Tesseract (seed 1 frame recall 0.71 -> 0.91) at a tenth of the
   cost. A word's confidence is its least certain character's CTC probability, so one doubtful
   digit pulls the whole number under the 80 % filter; a word cut by the frame edge may be a
   fragment of a longer number and is scored down (``_EDGE_FACTOR``); for ``eng``/``kor`` its
   accents are folded away (misreads there); a read that leaves ink unread goes to step 4;
4. lines the recogniser cannot read (its dictionary has no Hangul) or reads doubtfully go to
   Tesseract's LSTM (``eng+kor`` by default; Rekognition cannot read Korean) through
   ``tesserocr``'s in-process API: one ``PyTessBaseAPI`` per process, reused for every line,
   page segmentation mode 7 (single line);
5. map the word boxes back into the frame, build LINE and WORD detections with normalised
   ``BoundingBox``/``Polygon`` exactly like Rekognition's ``DetectText``.

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

__all__ = ["LocalTextAnalyser", "text_analysis"]

# --- tuning (measured on rendered 720p frames; see reko/localdev/render_frames.py) -------------
_LINE_HEIGHT = 56  # recognition crops are scaled to this height (px) ...
_MAX_UPSCALE = 4.0  # ... but never enlarged more than this ...
_PAD = 12  # ... and padded by this many white pixels on every side
_GOOD_SCORE = 80.0  # mean confidence x ink coverage that ends the search over variants
_HANGUL_SPACE = 0.29  # ink-free gap (x ink height) that separates two Hangul words, without Kiwi;
_HANGUL_SPACE_SURE = 0.33  # with Kiwi's spacing model: a gap this wide is a space whatever it says,
_HANGUL_SPACE_MAYBE = 0.2  # one this wide is a space where it puts one, a narrower one never is
_MIN_WORD_CONFIDENCE = 10.0  # Tesseract word confidence (0-100) below which a word is dropped
_DET_BOX_THRESH = 0.5  # PP-OCR DB detector box score threshold (RapidOCR default)
_ORT_THREADS = 1  # onnxruntime intra-op threads; frames are parallelised by Airflow tasks
_REC_HEIGHT = 48  # PP-OCR recogniser input height (px)
_REC_MIN_MEAN = 0.6  # recogniser reads with a lower mean character probability go to Tesseract
_REC_MAX_UNREAD = 1.0  # ... and so do reads that leave more ink columns than this x the line height
_REC_CHAR_REACH = 0.4  # unread: ink farther than this x the line height from every character read
_UNACCENTED_LANGUAGES = frozenset({"eng", "kor"})  # Tesseract languages whose Latin text has no accents
_EDGE_PX = 2  # a line quad this close to the frame edge may be cut by it ...
_EDGE_FACTOR = 0.7  # ... and the word at that end keeps this share of its confidence
_SMALL_SIDE = 160  # an image with a shorter side under this (px) is a crop of one word or line:
_SMALL_PAD = 0.5  # the detector sees it padded by this x its shorter side (text touching the image
# edge finds no line), and when it still finds none the whole image is read as one line

# Bumped when the reading itself changes with the same models, so that results stored by an older
# reader are not served as today's (they are cached by model version). 2: issue 13's small crops,
# accent folding and unread-ink check. 3: Hangul word breaks from clipped symbol boxes and Kiwi.
_READER_REVISION = 3

_TESSDATA_CANDIDATES = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
_LANGS_RE = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
# Largest frame the local models take, in pixels: Pillow's own decompression-bomb threshold
# (~89.5 MP; an 8K frame is 33 MP). Decoded as RGB it is ~270 MB, per task. Rekognition has no
# pixel limit the aws backend can hit (it re-encodes frames over its byte limits), so a larger
# frame fails alone, like Rekognition's ImageTooLargeException, instead of exhausting memory.
MAX_PIXELS = 89_478_485
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


def _rec_model_path() -> Path:
    path = _det_model_path().parent / "PP-OCRv6_rec_small.onnx"
    if not path.is_file():
        raise RuntimeError(f"RapidOCR recognition model not found at {path}: the rapidocr wheel must ship it")
    return path


def _versions(languages: str, det_side: int, roi: tuple[float, float, float, float]) -> str:
    from importlib.metadata import version

    import tesserocr

    from reko.config import TEXT_DET_SIDE

    tess = tesserocr.tesseract_version().split()[1]
    det = "" if det_side == TEXT_DET_SIDE else f"@{det_side}"
    if roi != (0.0, 0.0, 1.0, 1.0):
        det += "@roi(" + ",".join(f"{v:g}" for v in roi) + ")"
    return (
        f"rapidocr-{version('rapidocr')}/PP-OCRv6-det-small{det}+rec-small+tesseract-{tess}"
        f"+reader-{_READER_REVISION}({languages})"
    )


def _unaccented(ch: str) -> str:
    """A Latin letter without its diacritics ("í" -> "i"); other characters unchanged."""
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return base if len(base) == 1 and base.isascii() and base.isalpha() else ch


def _latin(ch: str) -> bool:
    """Characters the recogniser is trusted with: printable ASCII, Latin-1 and Latin Extended,
    general punctuation ("·", "–"); its dictionary is mostly Chinese, and a Hangul line comes out
    as CJK or Latin garbage."""
    return " " <= ch <= "~" or "\u00a0" <= ch <= "\u024f" or "\u2010" <= ch <= "\u2027"


class _Recogniser:
    """PP-OCR text-line recogniser run directly on onnxruntime, so the CTC output is ours: per
    character probabilities (the confidence) and time steps (the word boxes)."""

    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = _ORT_THREADS
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(_rec_model_path()), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise RuntimeError("the PP-OCR recognition model has no 'character' metadata (its dictionary)")
        self.chars = ["", *meta["character"].splitlines(), " "]  # CTC blank first, space last
        self.input = self.session.get_inputs()[0].name

    def __call__(self, bgr) -> tuple[list[tuple[str, float, float, float]], float]:
        """Read one line crop. Returns ([(char, probability, x0, x1)] in crop px, mean probability)."""
        import cv2
        import numpy as np

        h, w = bgr.shape[:2]
        rw = max(8, int(np.ceil(_REC_HEIGHT * w / h)))
        interp = cv2.INTER_CUBIC if h < _REC_HEIGHT else cv2.INTER_AREA
        x = cv2.resize(bgr, (rw, _REC_HEIGHT), interpolation=interp).astype(np.float32)
        x = (x.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        probs = self.session.run(None, {self.input: x[None]})[0][0]
        idx = probs.argmax(axis=1)
        best = probs[np.arange(len(idx)), idx]
        step = w / len(idx)
        out: list[list] = []
        prev = 0
        for t, k in enumerate(idx.tolist()):
            if k and k == prev:
                out[-1][1] = max(out[-1][1], float(best[t]))
                out[-1][3] = (t + 1) * step
            elif k:
                out.append([self.chars[k], float(best[t]), t * step, (t + 1) * step])
            prev = k
        mean = float(np.mean([c[1] for c in out])) if out else 0.0
        return [tuple(c) for c in out], mean


class _Engine:
    """Process-wide models for one language set. Not thread-safe: callers hold ``lock``."""

    def __init__(self, languages: str, tessdata: Path, det_side: int) -> None:
        import numpy  # noqa: F401  (fail early if the stack is incomplete)

        # OpenMP threads inside Tesseract cost more CPU than they save on single lines.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import tesserocr

        self.lock = threading.Lock()
        self.det_side = det_side
        self._detectors: dict[int, Any] = {}
        self.detector = self._detector(det_side)
        self.tesserocr = tesserocr
        self.languages = languages
        self.tessdata = tessdata
        self._combined: Any = None
        self._single: list | None = None
        self.recogniser = _Recogniser()
        # The recogniser's dictionary has accented letters; in languages written without them
        # its accents are misreads (a stylised i-dot reads "galleríes").
        self.fold_accents = set(languages.split("+")) <= _UNACCENTED_LANGUAGES

    # -- detection --------------------------------------------------------------------------
    def _detector(self, side: int):
        """The PP-OCR DB detector scaling an image's shorter side to ``side`` (one per side used):
        reko's port of RapidOCR's, same boxes, without RapidOCR's ~0.85 CPU-s of OmegaConf set-up
        per process (see ``text_detector``)."""
        from reko.analysis.text_detector import TextDetector

        det = self._detectors.get(side)
        if det is None:
            det = self._detectors[side] = TextDetector(
                _det_model_path(), side, box_thresh=_DET_BOX_THRESH, threads=_ORT_THREADS
            )
        return det

    def detector_input(self, bgr, frame_shape=None):
        """What ``detect_lines`` gives the detector: (image, detector side, padding in px)."""
        import numpy as np

        side = self.det_side
        h, w = bgr.shape[:2]
        whole = frame_shape is None or tuple(frame_shape[:2]) == (h, w)
        if not whole:
            side = max(32, round(side * min(h, w) / min(frame_shape[:2])))
        pad = round(_SMALL_PAD * min(h, w)) if whole and min(h, w) < _SMALL_SIDE else 0
        img = bgr
        if pad:
            import cv2

            colour = np.median(np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]]), axis=0)
            img = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=colour.tolist())
        return img, side, pad

    def detect_lines(self, bgr, frame_shape=None):
        """Line quads in ``bgr``: the frame, or a region of a frame of ``frame_shape``, which is
        then detected at the frame's scale (the detector would blow a flat region's short side up
        to ``det_side``, costing more than the whole frame)."""
        import numpy as np

        h, w = bgr.shape[:2]
        img, side, pad = self.detector_input(bgr, frame_shape)
        boxes = self._detector(side)(img)
        quads = [np.asarray(b, dtype=np.float32).reshape(4, 2) for b in boxes] if boxes is not None else []
        if pad:
            quads = [np.clip(q - pad, 0, (w, h)).astype(np.float32) for q in quads]
            quads = [q for q in quads if np.ptp(q[:, 0]) >= 4 and np.ptp(q[:, 1]) >= 4]
            if not quads:  # a crop of one blurred word the detector cannot find: read it whole
                quads = [np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)]
        return quads

    # -- recognition ------------------------------------------------------------------------
    @property
    def tess(self):
        """Tesseract for all the languages, created on first need: only lines the PP-OCR
        recogniser cannot read come here, and its set-up (~0.14 CPU-s) is paid per process."""
        if self._combined is None:
            self._combined = self._new_api(self.languages)
        return self._combined

    def single_language_apis(self) -> list:
        """For lines the combined model reads badly (e.g. it reads Hangul as Latin garbage):
        one API per language, created on first need."""
        if self._single is None:
            langs = self.languages.split("+")
            self._single = [] if len(langs) < 2 else [self._new_api(lang) for lang in langs]
        return self._single

    def _new_api(self, lang: str):
        tr = self.tesserocr
        api = tr.PyTessBaseAPI(
            path=str(self.tessdata) + os.sep, lang=lang, psm=tr.PSM.SINGLE_LINE, oem=tr.OEM.LSTM_ONLY
        )
        api.SetVariable("user_defined_dpi", "300")
        return api

    def _tesseract(self, img, api):
        """Recognise one prepared line image (text black on white) with ``api``.
        Returns symbols [(text, x0, x1, word index, word confidence)] in image pixels."""
        tr = self.tesserocr
        api.SetImageBytes(img.tobytes(), img.shape[1], img.shape[0], 1, img.shape[1])
        api.SetSourceResolution(300)
        api.Recognize()
        symbols = []  # (text, x0, x1, word index, word confidence)
        ri = api.GetIterator()
        if ri is not None:
            word_idx, word_conf = -1, 0.0
            for r in tr.iterate_level(ri, tr.RIL.SYMBOL):
                try:
                    text = r.GetUTF8Text(tr.RIL.SYMBOL)
                except RuntimeError:  # tesserocr raises when an element has no text
                    continue
                box = r.BoundingBox(tr.RIL.SYMBOL)
                if not text or box is None:
                    continue
                if r.IsAtBeginningOf(tr.RIL.WORD) or word_idx < 0:
                    word_idx += 1
                    word_conf = float(r.Confidence(tr.RIL.WORD))
                symbols.append((text, box[0], box[2], word_idx, word_conf))
        api.Clear()
        return symbols

    def read_line(self, gray, quad, bgr=None, bounds=None):
        """Read one detected line. Returns [(text, confidence, corners(4x2) in frame px)].

        ``bgr`` (the colour frame) lets the PP-OCR recogniser read it first; without it, or when
        the recogniser cannot read the line, Tesseract does. ``bounds`` (x0, y0, x1, y1) is the
        searched region, whose edges may cut a line (default the whole frame)."""
        import cv2
        import numpy as np

        quad = _order_quad(quad)
        w = int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))))
        h = int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
        if w < 4 or h < 4:
            return []
        dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        m = cv2.getPerspectiveTransform(quad, dst)

        def warp(img):
            out = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            return np.ascontiguousarray(np.rot90(out)) if rotated else out

        rotated = h >= 1.5 * w  # vertical text: read it rotated, like RapidOCR does
        crop = warp(gray)
        words = self._recognise(warp(bgr), crop) if bgr is not None else None
        if words is None:
            words = self._tesseract_line(crop)
        if not words:
            return []
        inv = np.linalg.inv(m)
        result = []
        for text, conf, (x0, y0, x1, y1) in words:
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
            if rotated:  # undo np.rot90 (counter-clockwise): original (x, y) = (w - y', x')
                pts = np.stack([w - pts[:, 1], pts[:, 0]], axis=1)
            hom = np.concatenate([pts, np.ones((4, 1))], axis=1) @ inv.T
            result.append([text, conf, hom[:, :2] / hom[:, 2:3]])
        _score_cut_words(result, quad, bounds or (0, 0, gray.shape[1], gray.shape[0]))
        return [tuple(r) for r in result]

    def _recognise(self, colour, grey) -> list | None:
        """PP-OCR's read of a line crop as [(text, confidence, box in crop px)], or None when it
        is no read to trust (empty, doubtful, or outside its Latin alphabet: a Hangul line often
        reads as nothing at all): Tesseract reads those."""
        import numpy as np

        chars, mean = self.recogniser(colour)
        if not chars or mean < _REC_MIN_MEAN or not all(_latin(c[0]) for c in chars):
            return None
        mask = _text_mask(grey)
        if mask is not None and _unread_ink(chars, mask) > _REC_MAX_UNREAD * grey.shape[0]:
            return None  # it read part of the line ("5" of "결승선까지 5킬로미터"): Tesseract reads all
        words = []
        groups: list[list] = [[]]
        for c in chars:
            if c[0] == " ":
                groups.append([])
            else:
                groups[-1].append(c)
        for g in groups:
            text = "".join(c[0] for c in g)
            if self.fold_accents:
                text = "".join(_unaccented(ch) for ch in text)
            if not g or _is_garbage(text):
                continue
            conf = 100.0 * min(c[1] for c in g)
            if conf < _MIN_WORD_CONFIDENCE:
                continue
            x0, x1 = g[0][2], g[-1][3]
            y0, y1 = 0.0, float(grey.shape[0])
            if mask is not None:  # tighten the box to the word's ink rows
                cols = slice(max(0, int(x0)), max(int(x0) + 1, int(np.ceil(x1))))
                rows = np.flatnonzero(mask[:, cols].any(axis=1))
                if len(rows):
                    y0, y1 = float(rows[0]), float(rows[-1] + 1)
            words.append((text, conf, (x0, y0, x1, y1)))
        return words or None  # nothing kept (e.g. Hangul read as uncertain Latin): ask Tesseract

    def _tesseract_line(self, crop) -> list:
        """Tesseract's read of a grey line crop as [(text, confidence, box in crop px)]."""
        import cv2

        ch, cw = crop.shape
        scale = min(_LINE_HEIGHT / ch, _MAX_UPSCALE)
        if abs(scale - 1.0) > 0.05:
            interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
            crop = cv2.resize(
                crop, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=interp
            )
        else:
            scale = 1.0

        # Try preprocessing variants (then single languages) until one reads the whole line
        # confidently; otherwise keep the best. Score = mean word confidence x the share of the
        # line's ink that the kept words cover (so a confident fragment does not win).
        best = (-1.0, [], None)
        apis = [self.tess] + self.single_language_apis()
        for api_idx, api in enumerate(apis):
            images = list(_candidates(crop)) if api_idx == 0 else ([best[2]] if best[2] is not None else [])
            for img in images:
                kept = [
                    wd
                    for wd in _words(self._tesseract(img, api), img)
                    if wd[1] >= _MIN_WORD_CONFIDENCE and not _is_garbage(wd[0])
                ]
                score = _score(kept, img)
                if score > best[0] + 1e-9:
                    best = (score, kept, img)
                if score >= _GOOD_SCORE:
                    break
            if best[0] >= _GOOD_SCORE:
                break
        return [
            (text, conf, tuple((v - _PAD) / scale for v in box))  # back to crop pixels
            for text, conf, box in best[1]
        ]


def _unread_ink(chars, mask) -> int:
    """Ink columns of a line's text mask that no character the recogniser read lies near: the
    recogniser skips what its dictionary lacks (Hangul) and still reads the rest confidently."""
    import numpy as np

    reach = _REC_CHAR_REACH * mask.shape[0]
    read = np.zeros(mask.shape[1], dtype=bool)
    for _, _, x0, x1 in chars:
        read[max(0, int(x0 - reach)) : max(0, int(np.ceil(x1 + reach)))] = True
    return int((mask.any(axis=0) & ~read).sum())


def _score_cut_words(words: list, quad, bounds) -> None:
    """Scale down, in place, the confidence of words the frame (or region) edge may cut: a line
    quad that touches the left (right) edge may be missing characters in its first (last) word,
    one that touches the top or bottom in all of them (a bib half out of frame, "7790", reads a
    confident "77")."""
    bx0, by0, bx1, by1 = bounds
    if not words:
        return
    if quad[:, 1].min() <= by0 + _EDGE_PX or quad[:, 1].max() >= by1 - 1 - _EDGE_PX:
        cut = range(len(words))
    else:
        cut = set()
        if quad[:, 0].min() <= bx0 + _EDGE_PX:
            cut.add(min(range(len(words)), key=lambda i: words[i][2][:, 0].min()))
        if quad[:, 0].max() >= bx1 - 1 - _EDGE_PX:
            cut.add(max(range(len(words)), key=lambda i: words[i][2][:, 0].max()))
    for i in cut:
        words[i][1] *= _EDGE_FACTOR


def _text_mask(crop):
    """Text pixels of a grey line crop (the likelier polarity of its extremes), or None if it has
    no contrast. The same choice as the first of `_candidates`."""
    import numpy as np

    lo, hi = float(np.percentile(crop, 2)), float(np.percentile(crop, 98))
    if hi - lo < 24:
        return None
    bright = crop >= hi - 0.25 * (hi - lo)
    dark = crop <= lo + 0.25 * (hi - lo)
    b_score = _border(bright).mean() + bright.mean()
    d_score = _border(dark).mean() + dark.mean()
    return _clear_border(bright if b_score <= d_score else dark)


def _score(words, img) -> float:
    if not words:
        return 0.0
    import numpy as np

    cols = (img < 128).any(axis=0)
    covered = np.zeros_like(cols)
    for _, _, (x0, _, x1, _) in words:
        covered[max(0, x0) : max(0, x1)] = True
    coverage = float((cols & covered).sum()) / max(1, int(cols.sum()))
    return sum(wd[1] for wd in words) / len(words) * coverage


def _border(a):
    import numpy as np

    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def _clear_border(mask):
    """mask: bool text pixels. Drop components that are crop edges, rules or boxes, not glyphs."""
    import cv2
    import numpy as np

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    hh, ww = mask.shape
    x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    at_side = (x == 0) | (x + bw == ww)
    at_top_bottom = (y == 0) | (y + bh == hh)
    # Glyph ascenders/descenders may graze the top/bottom edge: drop those only if they look
    # like rules (frame/box edges: spanning the crop's height, or long and flat).
    # Anywhere: a component as tall as the crop or long and flat is a rule or a box, not a glyph.
    drop = (
        at_side | (at_top_bottom & ((bh >= 0.8 * hh) | (bw >= 2 * hh))) | (bh >= 0.85 * hh) | (bw >= 2.5 * hh)
    )
    drop[0] = False
    touching = drop
    if not touching.any():
        return mask
    return mask & ~touching[labels]


def _candidates(crop):
    """Prepared images to try, best guess first: the crop binarised to its bright extreme and to
    its dark extreme (the likelier text polarity first; handles outlined captions, bands and
    boxes), then the plain grey crop with normalised polarity."""
    import cv2
    import numpy as np

    lo, hi = float(np.percentile(crop, 2)), float(np.percentile(crop, 98))
    pad = lambda a: cv2.copyMakeBorder(a, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_CONSTANT, value=255)  # noqa: E731
    if hi - lo < 24:  # no contrast: nothing to read
        return
    bright = crop >= hi - 0.25 * (hi - lo)
    dark = crop <= lo + 0.25 * (hi - lo)
    # Text is the minority: less of the border and less of the area (a bib's white box is not).
    b_score = _border(bright).mean() + bright.mean()
    d_score = _border(dark).mean() + dark.mean()
    masks = [bright, dark] if b_score <= d_score else [dark, bright]
    for mask in masks:
        yield pad(np.where(_clear_border(mask), 0, 255).astype(np.uint8))
    grey = 255 - crop if np.median(_border(crop)) < 128 else crop
    yield pad(np.ascontiguousarray(grey))


def _is_hangul(ch: str) -> bool:
    return bool(ch) and ("\uac00" <= ch[0] <= "\ud7a3" or "\u3131" <= ch[0] <= "\u318e")


_EDGE_MARKS = {"|": None, "[": "]", "]": "[", "(": ")", ")": "(", "{": "}", "}": "{", "‘": "’", "’": "‘"}


def _strip_edge_marks(group):
    """Drop '|' and unbalanced brackets/quotes at a word's ends: box edges and frame lines that
    Tesseract reads as glyphs (a caption's own '(...)' stays)."""
    text = "".join(s[0] for s in group)
    while group and group[0][0] in _EDGE_MARKS and (_EDGE_MARKS[group[0][0]] or "|") not in text[1:]:
        group, text = group[1:], text[1:]
    while group and group[-1][0] in _EDGE_MARKS and (_EDGE_MARKS[group[-1][0]] or "|") not in text[:-1]:
        group, text = group[:-1], text[:-1]
    return group


def _clip_symbols(symbols):
    """Tesseract's LSTM sometimes gives a word's first symbol a box reaching to the word's end
    ("료" over "료 지원 텐트"), which hides the gaps after it: clip a box at the next symbol's start."""
    out = list(symbols)
    for i in range(len(out) - 1):
        text, x0, x1, word, conf = out[i]
        if x0 < out[i + 1][1] < x1:
            out[i] = (text, x0, out[i + 1][1], word, conf)
    return out


_KIWI: Any = None
_KIWI_LOCK = threading.Lock()


def _kiwi():
    """Kiwi (kiwipiepy, Apache-2.0, its model ships in kiwipiepy_model): a Korean language model
    whose spacing settles the gaps the image cannot (~1.5 CPU-s and ~300 MB to load, once per
    process, on the first doubtful Hangul gap). None when it is not installed."""
    global _KIWI
    with _KIWI_LOCK:
        if _KIWI is None:
            try:
                from kiwipiepy import Kiwi
            except ImportError:
                _KIWI = False
            else:
                _KIWI = Kiwi(num_workers=0, load_typo_dict=False, load_multi_dict=False)
        return _KIWI or None


def _kiwi_breaks(texts: list[str]) -> set[int] | None:
    """Indexes i of the symbols ``texts`` before which Kiwi's spacing puts a space (None when
    Kiwi is missing or changes more than the spaces)."""
    kiwi = _kiwi()
    if kiwi is None:
        return None
    squashed = "".join(texts)
    spaced = kiwi.space(squashed)
    if spaced.replace(" ", "") != squashed:
        return None
    starts, pos = {}, 0
    for i, t in enumerate(texts):
        starts[pos] = i
        pos += len(t)
    breaks, pos = set(), 0
    for ch in spaced:
        if ch == " ":
            if pos in starts:
                breaks.add(starts[pos])
        else:
            pos += 1
    return breaks


def _words(symbols, img):
    """Group Tesseract symbols into words with tight ink boxes.

    Tesseract's Korean model often puts a space between every syllable; next to a Hangul
    symbol a word break is decided from the image instead, with Kiwi's spacing for the doubtful
    gaps: an ink-free gap of at least ``_HANGUL_SPACE_SURE`` x the line's ink height is a break,
    one of ``_HANGUL_SPACE_MAYBE`` is a break where Kiwi spaces the line's text (without Kiwi:
    ``_HANGUL_SPACE``). Other breaks are Tesseract's.
    Returns [(text, confidence, (x0, y0, x1, y1))] in image pixels.
    """
    import numpy as np

    if not symbols:
        return []
    symbols = _clip_symbols(symbols)
    ink = img < 128
    cols = ink.any(axis=0)
    rows = np.flatnonzero(ink.sum(axis=1) > 0.01 * img.shape[1])
    ink_h = float(rows[-1] - rows[0] + 1) if len(rows) else float(img.shape[0])
    gaps: dict[int, float] = {}  # symbol index -> ink-free gap (x ink height) before it, next to Hangul
    for i, (prev, cur) in enumerate(zip(symbols, symbols[1:], strict=False), 1):
        if _is_hangul(prev[0]) or _is_hangul(cur[0]):
            a, b = (prev[1] + prev[2]) // 2, (cur[1] + cur[2]) // 2
            run = best = 0
            for v in cols[max(0, a) : max(a, b)]:
                run = 0 if v else run + 1
                best = max(best, run)
            gaps[i] = best / ink_h
    doubtful = any(_HANGUL_SPACE_MAYBE <= g < _HANGUL_SPACE_SURE for g in gaps.values())
    kiwi = _kiwi_breaks([s[0] for s in symbols]) if doubtful else None
    groups = [[symbols[0]]]
    for i, (prev, cur) in enumerate(zip(symbols, symbols[1:], strict=False), 1):
        if i not in gaps:
            new_word = cur[3] != prev[3]
        elif kiwi is None:
            new_word = gaps[i] >= _HANGUL_SPACE
        else:
            new_word = gaps[i] >= _HANGUL_SPACE_SURE or (gaps[i] >= _HANGUL_SPACE_MAYBE and i in kiwi)
        if new_word:
            groups.append([cur])
        else:
            groups[-1].append(cur)
    words = []
    for g in groups:
        g = _strip_edge_marks(g)
        if not g:
            continue
        text = "".join(s[0] for s in g).strip()
        confs = {s[3]: s[4] for s in g}
        conf = sum(confs.values()) / len(confs)
        x0, x1 = min(s[1] for s in g), max(s[2] for s in g)
        sub = ink[:, max(0, x0) : max(x0 + 1, x1)].copy()
        if sub.shape[1] >= 8:  # ignore straight rules (edges of a bib's box, a band's border)
            sub[sub.mean(axis=1) > 0.85] = False
        rows_with_ink = np.flatnonzero(sub.any(axis=1))
        if len(rows_with_ink) >= 8:
            span = sub[rows_with_ink[0] : rows_with_ink[-1] + 1]
            sub[:, span.mean(axis=0) > 0.85] = False
        ys = np.flatnonzero(sub.any(axis=1))
        xs = np.flatnonzero(sub.any(axis=0))
        if len(ys) and len(xs):
            box = (x0 + int(xs[0]), int(ys[0]), x0 + int(xs[-1]) + 1, int(ys[-1]) + 1)
        else:
            box = (x0, 0, x1, img.shape[0])
        words.append((" ".join(text.split()), conf, box))
    return words


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


_ENGINES: dict[str, _Engine] = {}  # by languages and detector side
_ENGINES_LOCK = threading.Lock()


def _engine(languages: str, tessdata: Path, det_side: int = 736) -> _Engine:
    key = f"{languages}@{det_side}"
    eng = _ENGINES.get(key)
    if eng is None:
        with _ENGINES_LOCK:
            eng = _ENGINES.get(key)
            if eng is None:
                eng = _ENGINES[key] = _Engine(languages, tessdata, det_side)
    return eng


def _decode(image: Any, max_pixels: int = MAX_PIXELS):
    """Decode JPEG/PNG bytes to an RGB numpy array, strictly. Raises ValueError on bad input
    (and on an image over `max_pixels`, checked from the header, before decoding it)."""
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
            if img.width * img.height > max_pixels:
                raise ValueError(
                    f"image too large: {img.width}x{img.height} px ({img.width * img.height:,} pixels)"
                    f" is over the local analyser's limit of {max_pixels:,} pixels"
                )
            img.load()
            if img.width < 1 or img.height < 1:
                raise ValueError(f"{fmt} image has no pixels ({img.width}x{img.height})")
            rgb = img.convert("RGB")
    except ValueError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses it before we see its size
        raise ValueError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
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
    """Reads text in a frame locally (PP-OCR detection, PP-OCR recognition, Tesseract for Hangul).

    ``detect_text`` returns the shape of Rekognition's ``DetectText`` response: LINE detections
    first (``Id`` 0..n-1, reading order), then their WORDs (``ParentId`` = the line's ``Id``),
    with ``Confidence`` 0-100 (a word's least certain character for PP-OCR reads, Tesseract's word
    confidence for the rest, lowered where the frame edge may cut the word; a line's is the mean
    of its words)
    and ``Geometry`` normalised to the frame. Unlike Rekognition it reads Korean
    (``languages`` is a Tesseract language string such as ``"eng+kor"``) and has no 100-word cap.
    Construction is cheap; models load once per process on first use. Output is deterministic
    for the same input bytes.
    """

    kind = "text"

    def __init__(
        self,
        languages: str = "eng+kor",
        max_pixels: int = MAX_PIXELS,
        det_side: int | None = None,
        roi: tuple[float, float, float, float] | None = None,
    ) -> None:
        from reko.config import text_det_side, text_roi

        self.det_side = int(det_side) if det_side is not None else text_det_side()
        self.roi = tuple(float(v) for v in roi) if roi is not None else text_roi()
        if not 64 <= self.det_side <= 4096:
            raise ValueError(f"det_side must be 64..4096, got {det_side!r}")
        left, top, right, bottom = self.roi
        if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
            raise ValueError(f"roi must be fractions left < right and top < bottom in 0..1, got {roi!r}")
        if not isinstance(languages, str) or not _LANGS_RE.match(languages):
            raise ValueError(f"languages must look like 'eng' or 'eng+kor', got {languages!r}")
        if int(max_pixels) < 1:
            raise ValueError(f"max_pixels must be at least 1, got {max_pixels!r}")
        self.languages = languages
        self.max_pixels = int(max_pixels)
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
            self._model_version = _versions(self.languages, self.det_side, self.roi)
        return self._model_version

    def detect_text(self, image: bytes) -> dict:
        import cv2

        rgb = _decode(image, self.max_pixels)
        height, width = rgb.shape[:2]
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        engine = _engine(self.languages, self._tessdata, self.det_side)
        left, top, right, bottom = self.roi
        x0, y0 = round(left * width), round(top * height)
        x1, y1 = max(x0 + 1, round(right * width)), max(y0 + 1, round(bottom * height))
        region = bgr if (x0, y0, x1, y1) == (0, 0, width, height) else bgr[y0:y1, x0:x1]
        lines: list[dict] = []
        with engine.lock:
            for quad in engine.detect_lines(region, bgr.shape):
                quad = quad + (x0, y0)
                words = engine.read_line(gray, quad, bgr, (x0, y0, x1, y1))
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


def text_analysis(kind: str = "text", options: dict | None = None):
    """The registry's factory for ("local", "text"): `options` are Rekognition request options
    (the confidence filter is applied at indexing time for local results), so they are ignored."""
    from reko.analysis.base import Analysis

    analyser = LocalTextAnalyser()
    return Analysis(
        kind, "local", analyser.model_version, lambda frame: analyser.detect_text(frame.read_bytes())
    )


_CROP_RECOGNISER: _Recogniser | None = None
_CROP_LOCK = threading.Lock()


def read_crop(bgr) -> list[tuple[str, float, float, float]]:
    """Words the PP-OCR recogniser reads in one region of a frame, with no detector in front.

    For callers that already know where a line is (a runner's track predicts its bib's box, or a
    cheap proposal outlines it) but the detector saw no line there: blurred, shaded bibs it
    misses are still read well by the recogniser alone. ``bgr`` is a BGR uint8 array (a crop).
    Returns [(text, confidence 0-100 = the least certain character, x0, x1 in crop px)].
    """
    global _CROP_RECOGNISER
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] < 4 or bgr.shape[1] < 4:
        shape = getattr(bgr, "shape", None)
        raise ValueError(f"read_crop needs a BGR image of at least 4x4 px, got shape {shape}")
    with _CROP_LOCK:
        if _CROP_RECOGNISER is None:
            _CROP_RECOGNISER = _Recogniser()
        chars, _ = _CROP_RECOGNISER(bgr)
    words: list[tuple[str, float, float, float]] = []
    group: list = []
    for c in [*chars, (" ", 1.0, 0.0, 0.0)]:
        if c[0] != " ":
            group.append(c)
            continue
        text = "".join(g[0] for g in group)
        if group and not _is_garbage(text):
            words.append((text, 100.0 * min(g[1] for g in group), group[0][2], group[-1][3]))
        group = []
    return words
