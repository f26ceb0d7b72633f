"""Compiled hot loops. Everything else about the package is in pyproject.toml.

Each extension is one C file next to the Python module that calls it; `pip install -e .`
(scripts/bootstrap) and `pip install .` (the Dockerfile) build them with the machine's C
compiler and the Python headers.
"""

from setuptools import Extension, setup

# -O3 lets gcc vectorise the distance loops; the hot loops are plain C over doubles. The
# modules below also keep the floating point exactly Python's: their answers must equal
# the pure-Python and Lua computations of the same distances and tests.
COMPILE_ARGS = ["-O3", "-std=c11"]

EXTENSIONS: list[Extension] = [
    Extension(
        "dispatch.service_layer._areaprobe",
        ["dispatch/service_layer/_areaprobe.c"],
        extra_compile_args=[*COMPILE_ARGS, "-ffp-contract=off"],  # floats as Python's
    ),
    # No FMA contraction, no fused sincos: its haversine must be Python's to the last bit.
    Extension(
        "geoindex._gridknn",
        ["geoindex/_gridknn.c"],
        depends=["geoindex/_h3lib.h"],
        extra_compile_args=[
            *COMPILE_ARGS,
            "-ffp-contract=off",
            "-fno-builtin-sin",
            "-fno-builtin-cos",
        ],
    ),
    # The Redis edge's packing and a fix's text (digits through CPython's own formatting).
    Extension(
        "geoindex._resp",
        ["geoindex/_resp.c"],
        depends=["geoindex/_h3lib.h"],
        extra_compile_args=COMPILE_ARGS,
    ),
]

setup(ext_modules=EXTENSIONS)
