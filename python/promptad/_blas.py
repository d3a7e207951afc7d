"""_blas.py - the OpenBLAS kernel choice of the command line (host/cli/main.c), made before anything loads OpenBLAS.

OpenBLAS picks its slow generic kernels on CPUs it does not recognise, and it picks them once, when the library is
loaded (numpy loads it too). So at import, before numpy, we ask a child process which core OpenBLAS detects and,
for a generic one on an AVX2 / AVX-512 CPU, set OPENBLAS_CORETYPE as the command line does. A user's own setting is
respected. The same kernels give the command line's bits."""
import os
import subprocess
import sys

def choose_coretype():
    """The kernel choice of host/cli/main.c: OpenBLAS picks its slow generic kernels on CPUs it does not recognise,
    and the kernels are chosen when the library is loaded, so before loading libpromptad.so we ask a child process
    which core OpenBLAS detects and, for a generic one on an AVX2 / AVX-512 CPU, set OPENBLAS_CORETYPE as the
    command line does (it respects a user's own setting, and so do we)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    probe = ("import ctypes,ctypes.util\n"
             "n=ctypes.util.find_library('openblas') or 'libopenblas.so.0'\n"
             "l=ctypes.CDLL(n);l.openblas_get_corename.restype=ctypes.c_char_p\n"
             "print(l.openblas_get_corename().decode())")
    try:
        core = subprocess.run([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30).stdout.strip()
        flags = open("/proc/cpuinfo").read().split()
    except (OSError, subprocess.SubprocessError):
        return
    if core not in ("Prescott", "Core2", "generic"):
        return
    if "avx512f" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif "avx2" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


