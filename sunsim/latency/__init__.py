"""Latency models: step times (seconds) for prefill batches and decode iterations.

Owns:

* :mod:`~sunsim.latency.base`: the :class:`LatencyModel` interface, :class:`ConstantLatency`;
* :mod:`~sunsim.latency.roofline`: :class:`~sunsim.latency.roofline.RooflineLatency`;
* :mod:`~sunsim.latency.calibrated`: the roofline at efficiencies fitted to measured profiles
  (:class:`~sunsim.latency.calibrated.CalibratedLatency`), fitted by
  :mod:`~sunsim.latency.calibrate` (``python -m sunsim.latency.calibrate``);
* the measured-profile model, in rooms: :mod:`~sunsim.latency.fitting` (the fitted forms,
  NNLS, form selection), :mod:`~sunsim.latency.surface` (the interpolated correction),
  :mod:`~sunsim.latency.profile_format` (the profile directory format: the ONE writer and
  reader, :class:`~sunsim.latency.profile_meta.ProfileMeta`, the table checks),
  :mod:`~sunsim.latency.profile_find` (finding a profile directory),
  :mod:`~sunsim.latency.profiled` (:class:`~sunsim.latency.profiled.ProfiledLatency`),
  :mod:`~sunsim.latency.profile_check` (``check_profile``);
* :mod:`~sunsim.latency.resolve`: which model a run uses (``resolve_latency``).

Importing this package imports only :mod:`~sunsim.latency.base` (the engine needs nothing
else); import the submodules for the rest. Never imports torch.
"""

from sunsim.latency.base import ConstantLatency, LatencyModel

__all__ = ["LatencyModel", "ConstantLatency"]
