"""Importing NVIDIA's measured kernel database (aiconfigurator-core) as sunsim profiles.

Owns ``sunsim profile import``'s library side: locating and reading the package's kernel
tables (:mod:`.tables`), looking kernel times up inside their measured grids (:mod:`.interp`),
composing a model's prefill and decode step from its operators (:mod:`.compose`) and building
and writing the profile with its provenance (:mod:`.build`).

Why read the files rather than call the package's compiled estimator (``AicEngine``): the
parquet tables are the package's documented data plane (``systems/data/<system>/<family>/
<backend>/<version>/*.parquet``, Apache-2.0), readable with pandas alone, so every number in
an imported profile can be traced to table rows, the interpolation and the estimates for what
the tables lack are sunsim's own and written down (here and in each profile's meta), and
nothing depends on the private engine-spec wire format of a compiled extension that changes
between releases (its Python query API was already removed once, see the package's
``sdk/operations/README.md``). ``AicEngine`` also adds its own corrections (empirical
scaling factors in ``systems/<gpu>.yaml`` described as "nonofficial"); sunsim keeps measured
and estimated parts apart instead. The package is located with :mod:`importlib` and never
imported: the simulator and this importer never load its compiled module.

Beyond the BF16 composition: FP8 (W8A8) where FP8 GEMMs were measured, W8A16/W4A16 derived
from another GPU's weight-only/BF16 ratio where the backend measured none (:mod:`.derive`,
``method: "derived"``), and tensor parallelism with all-reduce and logits gather from the
measured comm tables (:mod:`.comm`).
"""

from __future__ import annotations

from sunsim.profiling.aic.build import ImportedProfile, device_slug, import_profile, write_imported
from sunsim.profiling.aic.tables import PACKAGE, PACKAGE_VERSION, SYSTEMS

__all__ = [
    "PACKAGE",
    "PACKAGE_VERSION",
    "SYSTEMS",
    "ImportedProfile",
    "device_slug",
    "import_profile",
    "write_imported",
]
