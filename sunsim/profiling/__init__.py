"""The torch profiling harness: the only place sunsim imports torch, and only lazily.

``import sunsim.profiling`` works without torch; the functions that need it raise
:class:`sunsim.errors.ProfileError` with ``pip install 'sunsim[profile]'`` when it is missing.

* :mod:`sunsim.profiling.modules`: the prefill and decode modules in plain torch.
* :mod:`sunsim.profiling.quant`: BF16 / W8A16 / W4A16 linear layers on real packed kernels.
* :mod:`sunsim.profiling.timing`: timers, device identification, copy-bandwidth and matmul probe.
* :mod:`sunsim.profiling.grid`: the grid and timing options (:class:`ProfileGrid`,
  :class:`TimingOptions`) and their defaults per device kind.
* :mod:`sunsim.profiling.measure`: which points fit, the roofline probes, the measure loop.
* :mod:`sunsim.profiling.record`: the measurements as tables and ``meta.json``.
* :mod:`sunsim.profiling.harness`: :func:`profile_model`, :func:`write_profile` (the files are
  written by :func:`sunsim.latency.profile_format.write_profile_dir`).
* :mod:`sunsim.profiling.analysis`: :func:`roofline_ratios` (no torch needed).
* :mod:`sunsim.profiling.aic`: ``sunsim profile import``, profiles composed from NVIDIA's
  measured kernel database (aiconfigurator-core's tables; no torch, the package never imported).
"""

from __future__ import annotations

from sunsim.profiling._torch import torch_available
from sunsim.profiling.analysis import roofline_ratios, roofline_summary
from sunsim.profiling.harness import (
    Profile,
    ProfileGrid,
    TimingOptions,
    default_grid,
    default_timing,
    profile_dir,
    profile_model,
    write_profile,
)

__all__ = [
    "Profile",
    "ProfileGrid",
    "TimingOptions",
    "default_grid",
    "default_timing",
    "profile_dir",
    "profile_model",
    "write_profile",
    "roofline_ratios",
    "roofline_summary",
    "torch_available",
]
