"""Validation of the simulator: against queueing theory (:mod:`sunsim.validate.queueing`, with
the closed forms and estimators in :mod:`sunsim.validate.queueing_theory`; ``sunsim validate
queueing``) and against a small real engine (:mod:`sunsim.validate.engine`, the check;
:mod:`sunsim.validate.real_engine`, the two-process engine; ``sunsim validate engine``).

Submodules are imported on demand (the engine check needs torch in its worker processes).
"""
