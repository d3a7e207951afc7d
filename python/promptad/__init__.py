"""promptad - PromptAD few-shot anomaly detection from Python, over the public C API (include/promptad.h) of
libpromptad.so through ctypes. Native calls release the GIL; errors raise PromptadError with the library's message.

    import promptad
    with promptad.Detector("results/mvtec/bottle/k4/seed0/model") as det:
        r = det.score("photo.png")            # Detection: score, anomalous, map (R x R float32), mask (R x R uint8)
    summary = promptad.run("configs/demo.yaml", {"run.epochs": 3})
"""
import csv
import ctypes
import math
import os
from collections import namedtuple

from . import _blas

_blas.choose_coretype()  # before numpy, which loads OpenBLAS

import numpy as np  # noqa: E402

from . import _lib  # noqa: E402

__all__ = ["Detector", "Detection", "PromptadError", "run", "version", "library_path"]

_DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
library_path = _lib.path

Detection = namedtuple("Detection", "score anomalous map mask")
Detection.__doc__ = ("One image's result: score (float, the image score), anomalous (score >= the model's "
                     "threshold), map (map_size x map_size float32 anomaly map), mask (uint8, 1 where map >= the "
                     "mask threshold)")


class PromptadError(RuntimeError):
    """A failed library call: .status is the pad_status code, the message the library's last error."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check(status, what):
    if status != 0:
        msg = (_lib.last_error() or b"").decode("utf-8", "replace")
        name = _lib.status_str(status).decode()
        raise PromptadError(status, "%s: %s%s" % (what, name, ": " + msg if msg else ""))


def version():
    return _lib.version().decode()


def _fs(path):
    return os.fsencode(os.fspath(path))


class Detector:
    """A model folder of `promptad run` (<output.dir>/<dataset>/<class>/k<k>/seed<s>/model) ready to score images.

    device: "auto", "cpu" or "cuda"; threads: CPU threads (0 = all); weights: the CLIP weights when they moved;
    max_batch: images per forward pass (16, as promptad predict); mask_threshold: pixel threshold of the masks
    (None = the model's image threshold). Not thread-safe: one call at a time per detector."""

    def __init__(self, model_dir, device="auto", threads=0, weights=None, max_batch=16, mask_threshold=None):
        if device not in _DEVICES:
            raise ValueError("device must be one of %s" % ", ".join(_DEVICES))
        p = _lib.detector_params_default()
        p.device = _DEVICES[device]
        p.n_threads = int(threads)
        self._weights = _fs(weights) if weights is not None else None
        p.weights = self._weights
        p.max_batch = int(max_batch)
        p.mask_threshold = math.nan if mask_threshold is None else float(mask_threshold)
        h = ctypes.c_void_p()
        _lib.clear_last_error()
        _check(_lib.detector_load(ctypes.byref(h), _fs(model_dir), ctypes.byref(p)), "loading %s" % model_dir)
        self._h = h
        info = _lib.DetectorInfo()
        _lib.detector_get_info(h, ctypes.byref(info))
        self.info = {f: getattr(info, f) for f, _ in _lib.DetectorInfo._fields_}
        for k in ("dataset", "cls", "protocol", "preprocess"):
            self.info[k] = (self.info[k] or b"").decode()
        self.map_size = info.map_size
        self.threshold = info.threshold

    def close(self):
        if getattr(self, "_h", None):
            _lib.detector_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def score_batch(self, images):
        """Scores a list of images (paths, or (H, W, 3) uint8 RGB arrays; not mixed) in one native call, batched as
        promptad predict batches. Returns (scores (n,) float32, maps (n, R, R) float32, masks (n, R, R) uint8)."""
        if not self._h:
            raise ValueError("the detector is closed")
        images = list(images)
        n, R = len(images), self.map_size
        scores = np.empty(n, np.float32)
        maps = np.empty((n, R, R), np.float32)
        masks = np.empty((n, R, R), np.uint8)
        if n == 0:
            return scores, maps, masks
        fp = ctypes.POINTER(ctypes.c_float)
        out = (scores.ctypes.data_as(fp), maps.ctypes.data_as(fp), masks.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        _lib.clear_last_error()
        if all(isinstance(x, (str, bytes, os.PathLike)) for x in images):
            paths = (ctypes.c_char_p * n)(*[_fs(x) for x in images])
            _check(_lib.detector_score_files(self._h, paths, n, *out), "scoring %d image file(s)" % n)
            return scores, maps, masks
        arrays = []
        for i, x in enumerate(images):
            a = np.ascontiguousarray(x)
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                raise ValueError("image %d: expected an (H, W, 3) uint8 RGB array or a path, got %s %s"
                                 % (i, a.dtype, a.shape))
            arrays.append(a)
        ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays])
        w = (ctypes.c_int * n)(*[a.shape[1] for a in arrays])
        h = (ctypes.c_int * n)(*[a.shape[0] for a in arrays])
        _check(_lib.detector_score_rgb(self._h, ptrs, w, h, n, *out), "scoring %d image(s)" % n)
        return scores, maps, masks

    def score(self, image):
        """One image (a path or an (H, W, 3) uint8 array) -> Detection; a list of them -> a list of Detections
        (scored in one call)."""
        single = not isinstance(image, (list, tuple))
        scores, maps, masks = self.score_batch([image] if single else image)
        res = [Detection(float(s), bool(not math.isnan(self.threshold) and float(s) >= self.threshold), m, k)
               for s, m, k in zip(scores, maps, masks)]
        return res[0] if single else res


def _overrides(overrides):
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        items = []
        for k, v in overrides.items():
            if isinstance(v, (list, tuple)):
                v = ",".join(str(x) for x in v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            items.append("%s=%s" % (k, v))
        return items
    return [str(x) for x in overrides]


def run(config, overrides=None, as_dataframe=None):
    """Runs `promptad run --config config --set ...` (overrides: a dict {"run.epochs": 3, "run.shots": [1, 2]} or a
    list of "key=value") and returns its summary.csv: a pandas DataFrame when pandas is installed (as_dataframe None
    or True), else a list of dicts (numbers as floats, missing ones as None). The results folder is the attribute
    results_dir of the DataFrame (.attrs) or of the list."""
    sets = [s.encode() for s in _overrides(overrides)]
    arr = (ctypes.c_char_p * max(len(sets), 1))(*sets)
    buf = ctypes.create_string_buffer(4096)
    _lib.clear_last_error()
    _check(_lib.run_config_file(_fs(config), arr, len(sets), buf, len(buf)), "running %s" % config)
    results_dir = buf.value.decode()
    return read_summary(results_dir, as_dataframe)


class _Rows(list):
    results_dir = None


def read_summary(results_dir, as_dataframe=None):
    """summary.csv of a results folder (<output.dir>/<dataset>) as a DataFrame or a list of dicts (see run)."""
    path = os.path.join(results_dir, "summary.csv")
    if as_dataframe is not False:
        try:
            import pandas as pd
        except ImportError:
            if as_dataframe:
                raise
        else:
            df = pd.read_csv(path)
            df.attrs["results_dir"] = results_dir
            return df
    rows = _Rows()
    rows.results_dir = results_dir
    numeric = {"k", "mean", "std", "n_seeds", "paper_mean", "paper_std"}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: (None if v == "" else float(v)) if k in numeric else v for k, v in r.items()})
    return rows
