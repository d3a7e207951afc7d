"""_lib.py - finds and loads libpromptad.so and declares the C signatures of include/promptad.h used by the package.

ctypes releases the GIL for the duration of every call into a CDLL (unlike PyDLL), so the native work of a score or
a run never blocks other Python threads."""
import ctypes
import os
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("PROMPTAD_LIB")
    if env:
        yield env
        return
    yield os.path.join(_HERE, "libpromptad.so")
    yield os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", "libpromptad.so")


def _load():
    tried = []
    for path in _candidates():
        if os.path.isfile(path):
            return ctypes.CDLL(path), path
        tried.append(path)
    raise ImportError("libpromptad.so not found (tried %s); pip install ./python builds it, or set PROMPTAD_LIB"
                      % ", ".join(tried))


lib, path = _load()


def _check_blas():
    """Warns when OpenBLAS runs its generic kernels although the command line would choose faster ones (OpenBLAS was
    loaded before promptad, e.g. by numpy, or OPENBLAS_CORETYPE could not be set): scores then differ from the
    command line's in the last bits, and GEMMs are several times slower."""
    want = os.environ.get("OPENBLAS_CORETYPE")
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return
    if want and core.lower() != want.lower() and core in ("Prescott", "Core2", "generic"):
        warnings.warn("OpenBLAS was loaded before promptad with its generic '%s' kernels (import promptad before "
                      "numpy, or set OPENBLAS_CORETYPE=%s before starting Python): results differ from the command "
                      "line's in the last bits and matrix products are slower" % (core, want), RuntimeWarning)


_check_blas()

c_int, c_float, c_double, c_char_p, c_void_p, c_size_t = (ctypes.c_int, ctypes.c_float, ctypes.c_double,
                                                          ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
P = ctypes.POINTER


class DetectorParams(ctypes.Structure):
    _fields_ = [("device", c_int), ("n_threads", c_int), ("weights", c_char_p), ("max_batch", c_int),
                ("mask_threshold", c_double)]


class DetectorInfo(ctypes.Structure):
    _fields_ = [("map_size", c_int), ("image_size", c_int), ("threshold", c_double), ("mask_threshold", c_double),
                ("map_lo", c_double), ("map_hi", c_double), ("has_cls", ctypes.c_bool), ("has_seg", ctypes.c_bool),
                ("k", c_int), ("seed", c_int), ("dataset", c_char_p), ("cls", c_char_p), ("protocol", c_char_p),
                ("preprocess", c_char_p)]


def _sig(name, res, *args):
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


version = _sig("pad_version", c_char_p)
status_str = _sig("pad_status_str", c_char_p, c_int)
last_error = _sig("pad_last_error", c_char_p)
clear_last_error = _sig("pad_clear_last_error", None)
log_set_level = _sig("pad_log_set_level", None, c_int)
detector_params_default = _sig("pad_detector_params_default", DetectorParams)
detector_load = _sig("pad_detector_load", c_int, P(c_void_p), c_char_p, P(DetectorParams))
detector_free = _sig("pad_detector_free", None, c_void_p)
detector_get_info = _sig("pad_detector_get_info", None, c_void_p, P(DetectorInfo))
detector_score_rgb = _sig("pad_detector_score_rgb", c_int, c_void_p, P(c_void_p), P(c_int), P(c_int), c_int,
                          P(c_float), P(c_float), P(ctypes.c_uint8))
detector_score_files = _sig("pad_detector_score_files", c_int, c_void_p, P(c_char_p), c_int, P(c_float), P(c_float),
                            P(ctypes.c_uint8))
run_config_file = _sig("pad_run_config_file", c_int, c_char_p, P(c_char_p), c_int, ctypes.c_char_p, c_size_t)
