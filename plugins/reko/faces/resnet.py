"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) run in numpy.

Why: the `dlib-bin` wheel is built without BLAS, so its convolutions cost ~0.054 CPU-s per face.
The same network with the same weights, as im2col + one GEMM per convolution on numpy's OpenBLAS
(one thread), gives the same 128-d vector (within float32 rounding: the test gate is 1e-3 per
component) for a fraction of that.

The weights are read from the .dat itself (dlib's serialization: ints as a size/sign byte then
little-endian bytes, floats as mantissa and exponent ints, tensors as four dims then raw float32),
once per process; nothing is downloaded. The file is walked layer by layer by the names dlib
writes before each layer's details (`con_4`, `affine_`, `relu_`, `max_pool_2`, `avg_pool_2`,
`add_prev_`, `fc_2`, inner layers first, which is the forward order); the parser checks that they
form exactly the network of dlib's `examples/dnn_face_recognition_ex.cpp`, so any other file is
refused rather than half-run:

    input 150x150 RGB, (pixel - mean) / 256
    con 32 7x7 /2, affine, relu, max_pool 3x3 /2
    residual stages of two 3x3 convs (each followed by an affine, relu between, relu after the add):
      3 x 32, [down] + 3 x 64, [down] + 2 x 128, [down] + 2 x 256, [down] 256
    avg_pool over everything, fc 128 (no bias)

A "down" block's first conv has stride 2 and no padding, and its shortcut is a 2x2 /2 average
pool; dlib adds tensors of different shapes top-left aligned with zeros outside the smaller one
(the shortcut has fewer channels, and at 8 -> 3 vs 4 px also more rows), which `_add` copies.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ResNet", "load", "blas_threads"]

CHIP_SIZE = 150
_NAME = re.compile(rb"\x01([\x04-\x15])(con_4|affine_|relu_|max_pool_2|avg_pool_2|add_prev_|fc_2)")


class _Reader:
    """A cursor over dlib-serialized bytes."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        control = self.data[self.pos]
        size, negative = control & 0x0F, control & 0x80
        if size > 8:
            raise ValueError(f"bad dlib integer at byte {self.pos}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if abs(exponent) > 1100:  # dlib's codes for inf / nan: never a valid input mean
            raise ValueError(f"non-finite dlib float at byte {self.pos}")
        return mantissa * 2.0**exponent

    def string(self) -> str:
        size = self.int()
        out = self.data[self.pos : self.pos + size].decode("ascii")
        self.pos += size
        return out

    def tensor(self) -> Any:
        import numpy as np

        version = self.int()
        if version != 2:
            raise ValueError(f"dlib tensor version {version} at byte {self.pos} (only 2 is known)")
        shape = tuple(self.int() for _ in range(4))
        count = shape[0] * shape[1] * shape[2] * shape[3]
        if self.pos + 4 * count > len(self.data):
            raise ValueError(f"the file is truncated: a {shape} tensor at byte {self.pos} runs past its end")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos += 4 * count
        return arr.astype(np.float32)

    def aliases(self, params: Any, count: int) -> list[Any]:
        """`count` alias_tensors (version, four dims; no offset: each starts where the one before
        ends in the layer's params), as views of `params`."""
        out, offset, flat = [], 0, params.reshape(-1)
        for _ in range(count):
            if self.int() != 1:
                raise ValueError(f"unknown dlib alias_tensor version at byte {self.pos}")
            shape = tuple(self.int() for _ in range(4))
            size = shape[0] * shape[1] * shape[2] * shape[3]
            if offset + size > flat.size:
                raise ValueError(f"alias_tensor {shape} overruns its layer's params")
            out.append(flat[offset : offset + size].reshape(shape))
            offset += size
        return out


@dataclass
class _Conv:
    """One convolution with the affine after it folded in: (kh*kw*C, F) weights and (F,) bias."""

    weights: Any
    bias: Any
    size: int
    stride: int
    padding: int


def _parse(data: bytes) -> tuple[tuple[float, float, float], list[tuple[str, Any]]]:
    """The input means and the layers (forward order) of the .dat; raises ValueError if it is
    not dlib's face-recognition ResNet."""
    import numpy as np

    at = data.find(b"\x01\x15input_rgb_image_sized")
    if at < 0 or not data[:at].count(b"loss_metric_"):
        raise ValueError("not a dlib loss_metric network over input_rgb_image_sized")
    r = _Reader(data, at)
    r.string()
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError("the network's input is not 150x150")
    layers: list[tuple[str, Any]] = []
    for match in _NAME.finditer(data, r.pos):
        if match.group(1)[0] != len(match.group(2)):
            continue
        r = _Reader(data, match.start())
        name = r.string()
        if name == "con_4":
            params = r.tensor()
            filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            w, b = r.aliases(params, 2)
            if nr != nc or sy != sx or py != px or w.shape[0] != filters or b.size != filters:
                raise ValueError(f"unexpected convolution at byte {match.start()}")
            layers.append(("con", (w, b.reshape(-1), nr, sy, py)))
        elif name == "affine_":
            params = r.tensor()
            gamma, beta = r.aliases(params, 2)
            if r.int() != 0 or gamma.shape[2:] != (1, 1):  # CONV_MODE (0): one gamma/beta per channel
                raise ValueError(f"affine layer at byte {match.start()} is not per channel")
            layers.append(("affine", (gamma.reshape(-1), beta.reshape(-1))))
        elif name in ("max_pool_2", "avg_pool_2"):
            nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
            if nr != nc or sy != sx or py != px or py != 0:
                raise ValueError(f"unexpected pooling at byte {match.start()}")
            layers.append((name[:3] + "_pool", (nr, sy)))
        elif name == "fc_2":
            outputs, inputs = r.int(), r.int()
            params = r.tensor()
            weights, _ = r.aliases(params, 2)
            if r.int() != 1:  # FC_NO_BIAS (1)
                raise ValueError("the fc layer has a bias")
            layers.append(("fc", np.ascontiguousarray(weights.reshape(inputs, outputs))))
        else:
            layers.append((name.rstrip("_"), None))
    return means, layers


_DOWN = ["con", "affine", "relu", "con", "affine", "avg_pool", "add_prev", "relu"]
_SAME = ["con", "affine", "relu", "con", "affine", "add_prev", "relu"]
_STAGES = [(32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True)]


class ResNet:
    """The network as folded convolutions, ready to run on a batch of 150x150 RGB chips."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        means, layers = _parse(path.read_bytes())
        kinds = [k for k, _ in layers]
        expected = ["con", "affine", "relu", "max_pool"]
        for _, same, down in _STAGES:
            expected += (_DOWN if down else []) + _SAME * same
        expected += ["avg_pool", "fc"]
        if kinds != expected:
            raise ValueError(f"{path.name} is not dlib's face ResNet v1 ({len(kinds)} layers found)")
        self.means = np.asarray(means, dtype=np.float32)
        convs: list[_Conv] = []
        for i, (kind, value) in enumerate(layers):
            if kind == "con":
                w, b, size, stride, padding = value
                gamma, beta = layers[i + 1][1]
                # fold the affine: gamma * (x*w + b) + beta, weights ordered as im2col's (ky, kx, c)
                folded = (w * gamma[:, None, None, None]).transpose(2, 3, 1, 0)
                convs.append(
                    _Conv(
                        np.ascontiguousarray(folded.reshape(-1, w.shape[0]), dtype=np.float32),
                        (b * gamma + beta).astype(np.float32),
                        size,
                        stride,
                        padding,
                    )
                )
        self.convs = convs
        self.fc = layers[-1][1]
        self.pools = [v for k, v in layers if k in ("max_pool", "avg_pool") and v[0] > 0]
        if self.pools[0] != (3, 2) or any(p != (2, 2) for p in self.pools[1:]):
            raise ValueError("unexpected pooling sizes")

    def __call__(self, chips: Any) -> Any:
        """128-d descriptors (float32, N x 128) of N x 150 x 150 x 3 uint8 RGB chips."""
        import numpy as np

        x = (np.asarray(chips, dtype=np.float32) - self.means) / np.float32(256.0)
        if x.ndim != 4 or x.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be N x {CHIP_SIZE} x {CHIP_SIZE} x 3, not {x.shape}")
        if not len(x):
            return np.zeros((0, self.fc.shape[1]), dtype=np.float32)
        convs = iter(self.convs)
        x = _relu(_conv(x, next(convs)))
        x = _max_pool(x, 3, 2)
        for _, same, down in _STAGES:
            if down:
                y = _conv(_relu(_conv(x, next(convs))), next(convs))
                x = _relu(_add(y, _avg_pool(x, 2, 2)))
            for _ in range(same):
                y = _conv(_relu(_conv(x, next(convs))), next(convs))
                x = _relu(_add(y, x))
        return x.mean(axis=(1, 2)) @ self.fc


def _relu(x: Any) -> Any:
    import numpy as np

    return np.maximum(x, 0, out=x)


def _conv(x: Any, conv: _Conv) -> Any:
    """NHWC convolution as im2col + one GEMM (dlib's output size: 1 + (in + 2p - k) // s)."""
    import numpy as np

    if conv.padding:
        p = conv.padding
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, c = x.shape
    k, s = conv.size, conv.stride
    ho, wo = 1 + (h - k) // s, 1 + (w - k) // s
    sn, sh, sw, sc = x.strides
    cols = np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, k, k, c), (sn, sh * s, sw * s, sh, sw, sc), writeable=False
    )
    out = np.ascontiguousarray(cols).reshape(n * ho * wo, k * k * c) @ conv.weights
    out += conv.bias
    return out.reshape(n, ho, wo, -1)


def _windows(x: Any, k: int, s: int) -> Any:
    import numpy as np

    n, h, w, c = x.shape
    ho, wo = 1 + (h - k) // s, 1 + (w - k) // s
    sn, sh, sw, sc = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, ho, wo, k, k, c), (sn, sh * s, sw * s, sh, sw, sc))


def _max_pool(x: Any, k: int, s: int) -> Any:
    return _windows(x, k, s).max(axis=(3, 4))


def _avg_pool(x: Any, k: int, s: int) -> Any:
    return _windows(x, k, s).mean(axis=(3, 4), dtype=x.dtype)


def _add(a: Any, b: Any) -> Any:
    """dlib's add_prev: the larger shape, each tensor added where it exists (zeros elsewhere)."""
    import numpy as np

    if a.shape == b.shape:
        return a + b
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


_LOADED: dict[Path, ResNet] = {}
_LOCK = threading.Lock()


def load(path: Path) -> ResNet:
    """The network of a .dat, parsed once per process (~22 MB of weights kept in memory)."""
    with _LOCK:
        if path not in _LOADED:
            _LOADED[path] = ResNet(path)
        return _LOADED[path]


def _openblas() -> Any | None:
    """numpy's bundled OpenBLAS (already loaded by numpy), or None if it is not found."""
    import numpy as np

    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for name in sorted(glob.glob(str(libs / "libscipy_openblas*.so*"))):
        lib = ctypes.CDLL(name)
        for suffix in ("64_", ""):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                put.argtypes = [ctypes.c_int]
                return get, put
    return None


_BLAS: Any = None


@contextmanager
def blas_threads(count: int = 1) -> Iterator[None]:
    """Run numpy's GEMMs on `count` threads, then restore the process's setting. One thread:
    each face's GEMMs are small, and the DAG runs one task per core, so more threads only add
    spinning (process CPU) on a shared machine. `REKO_FACE_BLAS_THREADS` overrides `count`."""
    global _BLAS
    if _BLAS is None:
        _BLAS = _openblas() or False
    count = int(os.environ.get("REKO_FACE_BLAS_THREADS", "") or count)
    if not _BLAS:
        yield
        return
    get, put = _BLAS
    before = get()
    put(count)
    try:
        yield
    finally:
        put(before)
