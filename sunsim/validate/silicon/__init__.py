"""``sunsim validate silicon``: sunsim against measured end-to-end serving runs
(aiconfigurator-core's ``systems/silicon_sample.csv``).

:mod:`.rows` reads the file, splits it (overhead fit set vs reported rows) and says which rows
sunsim can express; :mod:`.profiles` finds or imports the backend's step-time profile;
:mod:`.mapping` turns a row into a scenario and runs it; :mod:`.run` runs many rows in a
process pool; :mod:`.summary` tabulates the errors; :mod:`.overhead_fit` fits the per-step
engine overhead, :mod:`.client_fit` the clients' delay and :mod:`.correction_fit` the
per-(backend, GPU) decode scale and request latency, all on the fit set.
"""
