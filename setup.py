"""Build hook for the optional compiled engine; everything else is in pyproject.toml.

``pip install .`` (and ``pip install -e .``) build the pure-Python package, as before.
``SUNSIM_COMPILE=1 pip install .`` also compiles the modules of
``sunsim.build_info.COMPILED_MODULES`` with mypyc (the build backend, ``build_backend.py``,
adds the pinned mypy to the build requirements then, and refuses an editable install). The
compiled build uses its own build directory, ``build/mypyc``, so a later pure build never
picks up its extension modules.
"""

import os
import runpy
import sys

from setuptools import setup

compiled = os.environ.get("SUNSIM_COMPILE", "") == "1"


def _ext_modules() -> list:
    if not compiled or not {"bdist_wheel", "build", "build_ext"} & set(sys.argv):
        return []  # metadata only (egg_info, dist_info): no need to run mypyc
    from mypyc.build import mypycify

    info = runpy.run_path(os.path.join("sunsim", "build_info.py"))
    paths = [m.replace(".", "/") + ".py" for m in info["COMPILED_MODULES"]]
    return mypycify(paths, opt_level="3", target_dir="build/mypyc/c")


setup(
    ext_modules=_ext_modules(),
    options={"build": {"build_base": "build/mypyc"}} if compiled else {},
)
