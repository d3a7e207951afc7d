"""setup.py - builds libpromptad.so with the project's CMake (the folder above this one) and ships it inside the
package. Set PROMPTAD_LIB to an already built libpromptad.so to skip the build, PROMPTAD_CMAKE_ARGS for extra CMake
arguments (e.g. -DPROMPTAD_CUDA=OFF)."""
import os
import shlex
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "promptad", "libpromptad.so")
        prebuilt = os.environ.get("PROMPTAD_LIB")
        if prebuilt:
            shutil.copyfile(prebuilt, dest)
            return
        if not os.path.isfile(os.path.join(SOURCE, "include", "promptad.h")):
            raise RuntimeError("python/ must stay inside the promptad source tree (or set PROMPTAD_LIB)")
        build = tempfile.mkdtemp(prefix="promptad-build-")
        try:
            extra = shlex.split(os.environ.get("PROMPTAD_CMAKE_ARGS", ""))
            subprocess.check_call(["cmake", "-S", SOURCE, "-B", build, "-DPROMPTAD_TESTS=OFF",
                                   "-DPROMPTAD_BENCH=OFF"] + extra)
            subprocess.check_call(["cmake", "--build", build, "--target", "promptad_shared", "-j",
                                   str(os.cpu_count() or 2)])
            shutil.copyfile(os.path.join(build, "libpromptad.so"), dest)
        finally:
            shutil.rmtree(build, ignore_errors=True)


setup(cmdclass={"build_py": BuildWithLibrary})
