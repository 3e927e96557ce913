"""Build the Cython hot path: every ext/NAME.pyx becomes the module kaizen.ext.NAME.

Switches (environment), as uvloop and nautilus_trader have them:
  KAIZEN_CYTHON_ANNOTATE=1  write ext/*.html annotation next to the sources
  KAIZEN_CYTHON_DEBUG=1     -O0 -g, bounds checks back on
  KAIZEN_CYTHON_COVERAGE=1  line tracing for coverage.py (slow)
  KAIZEN_NATIVE=1           -march=native (for the pinned bare-metal box; not portable)
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent
ANNOTATE = os.environ.get("KAIZEN_CYTHON_ANNOTATE") == "1"
DEBUG = os.environ.get("KAIZEN_CYTHON_DEBUG") == "1"
COVERAGE = os.environ.get("KAIZEN_CYTHON_COVERAGE") == "1"
NATIVE = os.environ.get("KAIZEN_NATIVE") == "1"

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if COVERAGE:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

cflags = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-strict-aliasing"]
if NATIVE:
    cflags.append("-march=native")

# Extra C sources or libraries per module, for modules that wrap C helpers.
EXTRA_SOURCES: dict[str, list[str]] = {}
EXTRA_LIBS: dict[str, list[str]] = {}
# Extra compiler flags per module. thompson: no fused multiply-add contraction (-march=native and
# aarch64 would otherwise fuse a*b+c), so its draws are bit-identical across platforms and to the
# plain-Python reference.
EXTRA_CFLAGS: dict[str, list[str]] = {"thompson": ["-ffp-contract=off"]}


def extensions() -> list[Extension]:
    exts = []
    for pyx in sorted((ROOT / "ext").glob("*.pyx")):
        name = pyx.stem
        exts.append(
            Extension(
                f"kaizen.ext.{name}",
                [f"ext/{pyx.name}", *EXTRA_SOURCES.get(name, [])],
                include_dirs=[numpy.get_include(), "ext"],
                define_macros=macros,
                extra_compile_args=cflags + EXTRA_CFLAGS.get(name, []),
                libraries=EXTRA_LIBS.get(name, []),
            )
        )
    return exts


setup(
    # kaizen/ext is a symlink to ext/, so `from kaizen.ext.book cimport OrderBook` resolves
    # through include_path ".", both in-place and in a wheel.
    ext_modules=cythonize(
        extensions(),
        compiler_directives=directives,
        include_path=["."],
        annotate=ANNOTATE,
        nthreads=int(os.environ.get("KAIZEN_BUILD_JOBS", "2")),
    ),
    zip_safe=False,
)
