"""PP-OCR DB text-line detector on onnxruntime, without RapidOCR's machinery.

A port of the detection path of RapidOCR 3.10.0 (``rapidocr/main.py``, ``ch_ppocr_det/``,
``utils/process_img.py``, ``inference_engine/onnxruntime/``; Apache-2.0, itself from PaddleOCR's
``DBPostProcess``, Apache-2.0, Copyright (c) 2020 PaddlePaddle Authors) as reko calls it:
``RapidOCR(params)(bgr, use_det=True, use_cls=False, use_rec=False).boxes`` with its
``config.yaml`` defaults for everything reko does not set. RapidOCR builds OmegaConf configs at
import and construction (~0.85 CPU-s per task process); this module loads only numpy, cv2,
onnxruntime, pyclipper and shapely, which RapidOCR loads too. The operations, their order and
their dtypes are RapidOCR's, so the boxes are the same bit for bit
(``tests/test_text_detector.py`` compares both on real frames): keep them that way, or bump
``_READER_REVISION`` in ``local_text``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

__all__ = ["TextDetector"]

# RapidOCR 3.10.0 config.yaml, Global: (the frame is brought within these bounds first)
_MIN_SIDE_LEN = 30
_MAX_SIDE_LEN = 2000
_MIN_HEIGHT = 30  # ... then an image this flat ...
_WIDTH_HEIGHT_RATIO = 8  # ... or this wide is padded with black above and below
# config.yaml, Det:
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.5, 0.5, 0.5)
_THRESH = 0.3  # probability map binarisation threshold
_MAX_CANDIDATES = 1000
_UNCLIP_RATIO = 1.6
_MIN_SIZE = 3  # DBPostProcess: boxes with a shorter side under this (map px) are dropped
_BOX_SORT_Y_THRESHOLD = 10  # TextDetector.sorted_boxes: same line if top-left y within this


def _round32(v: int) -> int:
    return int(round(v / 32) * 32)


def _resize_within_bounds(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    """RapidOCR's ``resize_image_within_bounds``: long side over 2000 px shrunk, short side under
    30 px enlarged, both to multiples of 32. Returns (image, ratio_h, ratio_w), the ratios of the
    last resize only (as RapidOCR records them)."""
    ratio_h = ratio_w = 1.0
    h, w = img.shape[:2]
    if max(h, w) > _MAX_SIDE_LEN:
        ratio = float(_MAX_SIDE_LEN) / h if h > w else float(_MAX_SIDE_LEN) / w
        img, ratio_h, ratio_w = _resize_by(img, ratio)
    h, w = img.shape[:2]
    if min(h, w) < _MIN_SIDE_LEN:
        ratio = float(_MIN_SIDE_LEN) / h if h < w else float(_MIN_SIDE_LEN) / w
        img, ratio_h, ratio_w = _resize_by(img, ratio)
    return img, ratio_h, ratio_w


def _resize_by(img: np.ndarray, ratio: float) -> tuple[np.ndarray, float, float]:
    h, w = img.shape[:2]
    rh, rw = _round32(int(h * ratio)), _round32(int(w * ratio))
    if rw <= 0 or rh <= 0:
        raise ValueError(f"cannot resize a {w}x{h} image for text detection")
    return cv2.resize(img, (rw, rh)), h / rh, w / rw


def _vertical_padding(img: np.ndarray) -> tuple[np.ndarray, int]:
    """RapidOCR's ``apply_vertical_padding``: a flat or very wide image gets black bands above and
    below. Returns (image, top padding in px)."""
    h, w = img.shape[:2]
    if h <= _MIN_HEIGHT or w / h > _WIDTH_HEIGHT_RATIO:
        new_h = max(int(w / _WIDTH_HEIGHT_RATIO), _MIN_HEIGHT) * 2
        pad = int(abs(new_h - h) / 2)
        return cv2.copyMakeBorder(img, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad
    return img, 0


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``contour``, corners from the top-left clockwise, and its
    shorter side (DBPostProcess.get_mini_boxes)."""
    rect = cv2.minAreaRect(contour)
    points = sorted(cv2.boxPoints(rect), key=lambda x: x[0])
    i1, i4 = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    i2, i3 = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return np.array([points[i1], points[i2], points[i3], points[i4]]), min(rect[1])


def _box_score_fast(pred: np.ndarray, box_in: np.ndarray) -> float:
    """Mean probability inside the box (DBPostProcess.box_score_fast, score_mode "fast")."""
    h, w = pred.shape[:2]
    box = box_in.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _unclip(box: np.ndarray) -> np.ndarray:
    """Grow the shrunk text kernel back by area x ratio / perimeter (DB's unclip)."""
    poly = Polygon(box)
    distance = poly.area * _UNCLIP_RATIO / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance)).reshape((-1, 1, 2))


def _order_clockwise(pts: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (order_points_clockwise)."""
    x_sorted = pts[np.argsort(pts[:, 0]), :]
    left, right = x_sorted[:2, :], x_sorted[2:, :]
    tl, bl = left[np.argsort(left[:, 1]), :]
    tr, br = right[np.argsort(right[:, 1]), :]
    return np.array([tl, tr, br, bl], dtype="float32")


def _sorted_boxes(boxes: np.ndarray) -> np.ndarray:
    """Top to bottom, then left to right within a line (TextDetector.sorted_boxes)."""
    y = boxes[:, 0, 1]
    y_order = np.argsort(y, kind="stable")
    by_y = boxes[y_order]
    steps = (np.diff(y[y_order]) >= _BOX_SORT_Y_THRESHOLD).astype(np.int32)
    line_ids = np.concatenate([[0], np.cumsum(steps)])
    return by_y[np.lexsort((by_y[:, 0, 0], line_ids))]


class TextDetector:
    """Text-line quads in a BGR image: RapidOCR's detector with ``Det.limit_side_len``
    = ``limit_side_len`` (the image's shorter side is scaled up to it) and ``Det.box_thresh``.

    Not thread-safe (one onnxruntime session; callers serialise, as reko's engine does).
    """

    def __init__(self, model_path: str | Path, limit_side_len: int, box_thresh: float, threads: int) -> None:
        import os

        import onnxruntime as ort

        self.limit_side_len = int(limit_side_len)
        self.box_thresh = float(box_thresh)
        # RapidOCR's OrtInferSession options: the same graph and threads give the same floats.
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        opts.enable_cpu_mem_arena = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if 1 <= threads <= (os.cpu_count() or 1):
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path),
            sess_options=opts,
            providers=[("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})],
        )
        self._input = self.session.get_inputs()[0].name
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._mean = np.array(_MEAN)  # float64, as RapidOCR's: normalisation runs in float64
        self._std = np.array(_STD)

    def __call__(self, img: np.ndarray) -> np.ndarray | None:
        """Quads (N x 4 x 2, float32, px of ``img``, clockwise from top-left, reading order), or
        None when there is no text (RapidOCR's ``boxes`` is None then too)."""
        img = self._as_bgr(img)
        ori_h, ori_w = img.shape[:2]
        img, ratio_h, ratio_w = _resize_within_bounds(img)
        img, top = _vertical_padding(img)
        boxes = self._detect(img)
        if boxes is None:
            return None
        # map_boxes_to_original: undo the padding, then the resize, then clip to the image
        boxes[:, :, 1] -= top
        boxes[:, :, 0] *= ratio_w
        boxes[:, :, 1] *= ratio_h
        boxes = np.where(boxes < 0, 0, boxes)
        boxes[..., 0] = np.where(boxes[..., 0] > ori_w, ori_w, boxes[..., 0])
        boxes[..., 1] = np.where(boxes[..., 1] > ori_h, ori_h, boxes[..., 1])
        return boxes

    @staticmethod
    def _as_bgr(img: Any) -> np.ndarray:
        """RapidOCR's LoadImage for an ndarray: grey becomes BGR, 3 channels pass unchanged."""
        if not isinstance(img, np.ndarray):
            raise TypeError(f"image must be a numpy array, not {type(img).__name__}")
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.ndim != 3 or img.shape[2] != 3:  # RapidOCR flattens alpha; reko never passes it
            raise ValueError(f"image must be grey or BGR, got shape {img.shape}")
        return img

    def _detect(self, img: np.ndarray) -> np.ndarray | None:
        """TextDetector.__call__: quads in px of ``img`` (float32, sorted), or None."""
        src_h, src_w = img.shape[:2]
        x = self._preprocess(img)
        if x is None:
            return None
        pred = self.session.run(self._outputs, {self._input: x})[0]
        boxes = self._postprocess(pred, src_h, src_w)
        if len(boxes) < 1:
            return None
        return _sorted_boxes(boxes)

    def _preprocess(self, img: np.ndarray) -> np.ndarray | None:
        """DetPreProcess (limit_type "min"): shorter side up to ``limit_side_len``, both sides to
        multiples of 32, (x / 255 - mean) / std, NCHW float32."""
        h, w = img.shape[:2]
        ratio = 1.0
        if min(h, w) < self.limit_side_len:
            ratio = float(self.limit_side_len) / h if h < w else float(self.limit_side_len) / w
        rh, rw = _round32(int(h * ratio)), _round32(int(w * ratio))
        if rw <= 0 or rh <= 0:
            return None
        resized = cv2.resize(img, (rw, rh))
        x = (resized.astype("float32") * (1 / 255.0) - self._mean) / self._std
        return np.expand_dims(x.transpose((2, 0, 1)), axis=0).astype(np.float32)

    def _postprocess(self, pred: np.ndarray, src_h: int, src_w: int) -> np.ndarray:
        """DBPostProcess (dilated mask, score_mode "fast") then filter_det_res."""
        prob = pred[:, 0, :, :][0]
        mask = cv2.dilate(np.array(prob > _THRESH).astype(np.uint8), np.array([[1, 1], [1, 1]]))
        height, width = mask.shape
        contours, _ = cv2.findContours((mask * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        kept = []
        for contour in contours[:_MAX_CANDIDATES]:
            points, sside = _mini_box(contour)
            if sside < _MIN_SIZE:
                continue
            if self.box_thresh > _box_score_fast(prob, points.reshape(-1, 2)):
                continue
            box, sside = _mini_box(_unclip(points))
            if sside < _MIN_SIZE + 2:
                continue
            box[:, 0] = np.clip(np.round(box[:, 0] / width * src_w), 0, src_w)
            box[:, 1] = np.clip(np.round(box[:, 1] / height * src_h), 0, src_h)
            kept.append(box.astype(np.int32))
        out = []
        for box in np.array(kept, dtype=np.int32):
            box = _order_clockwise(box)
            for p in range(box.shape[0]):  # clip_det_res
                box[p, 0] = int(min(max(box[p, 0], 0), src_w - 1))
                box[p, 1] = int(min(max(box[p, 1], 0), src_h - 1))
            if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
                continue
            out.append(box)
        return np.array(out)
