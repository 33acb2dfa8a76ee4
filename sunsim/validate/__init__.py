"""Validation of the simulator: against queueing theory (:mod:`sunsim.validate.queueing`,
``sunsim validate queueing``) and against a small real engine (:mod:`sunsim.validate.engine`,
``sunsim validate engine``).

Submodules are imported on demand (the engine check needs torch in its worker processes).
"""
