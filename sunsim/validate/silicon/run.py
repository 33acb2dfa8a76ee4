"""Running ``sunsim validate silicon``: classify every row, find the profiles, simulate the
expressible reported rows (in a process pool), and return one result row per CSV row."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.errors import SunsimError
from sunsim.validate.silicon.correction_fit import Correction
from sunsim.validate.silicon.mapping import CLIENT_START, PROMPTS_PER_CLIENT, run_case
from sunsim.validate.silicon.rows import Case, Skip, classify, in_fit_set, read_silicon

#: Skip reason of the rows the engine overhead was fitted on.
FIT_SET = "in the engine-overhead fit set (never reported)"
#: Skip reason of the reported rows in a ``--fit-set`` run.
NOT_FIT_SET = "not in the engine-overhead fit set (--fit-set run)"
#: Skip reason of rows left out by ``--max-rows``.
NOT_RUN = "beyond --max-rows"

_TEXT = ("id", "backend", "backend_version", "model_path", "system", "precision", "mode")
_SHAPE = ("isl", "osl", "concurrency", "tp_size", "prefill_num_workers", "prefill_tp_size")
_SHAPE2 = ("decode_num_workers", "decode_tp_size", "silicon_ttft_ms", "silicon_tpot_ms")


def _base(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in (*_TEXT, *_SHAPE, *_SHAPE2)}


def _overhead_of(backend: str, use: bool) -> tuple[str, str]:
    """(``engine_overhead`` value, note) for ``backend``."""
    from sunsim.latency.overhead import load_overhead

    if not use:
        return "none", "not asked for"
    try:
        return backend, load_overhead(backend).fitted_on
    except SunsimError as e:
        return "none", str(e)


def _plan(
    df: pd.DataFrame, max_rows: int | None, cache: Path, overhead: bool, fit_set: bool = False
) -> tuple[list[dict[str, Any]], list[tuple[int, Case, Path, Path, str]]]:
    """Result rows for every CSV row (skips filled in) and the cases to run:
    (result index, case, prefill profile, decode profile, engine_overhead). ``fit_set``: run
    the overhead fit set instead of the reported rows (for choosing a modelling option on
    rows that are never reported)."""
    from sunsim.validate.silicon.profiles import NoProfile

    out: list[dict[str, Any]] = []
    todo: list[tuple[int, Case, Path, Path, str]] = []
    found: dict[tuple[Any, ...], Path | NoProfile] = {}
    for row in df.to_dict("records"):
        res = _base(row) | {"status": "skipped", "reason": "", "detail": ""}
        out.append(res)
        if in_fit_set(str(row["id"])) != fit_set:
            res["reason"] = NOT_FIT_SET if fit_set else FIT_SET
            continue
        case = classify(row)
        if isinstance(case, Skip):
            res.update(reason=case.reason, detail=case.detail)
            continue
        if max_rows is not None and len(todo) >= max_rows:
            res["reason"] = NOT_RUN
            continue
        try:
            dirs = [
                _profile(found, cache, case, tp)
                for tp in (case.prefill_tensor_parallel_size, case.decode_tensor_parallel_size)
            ]
        except NoProfile as e:
            res.update(reason="no profile for the backend", detail=str(e))
            continue
        oh, note = _overhead_of(case.backend, overhead)
        res.update(
            profile=dirs[1].parent.parent.name, engine_overhead=oh, overhead_note=note,
            sunsim_model=case.model, sunsim_precision=case.precision,
            kv_cache_dtype=case.kv_cache_dtype,
        )  # fmt: skip
        todo.append((len(out) - 1, case, dirs[0], dirs[1], oh))
    return out, todo


def _profile(found: dict[tuple[Any, ...], Any], cache: Path, case: Case, tp: int) -> Path:
    """:func:`~.profiles.backend_profile`, looked up (or imported) once per key."""
    from sunsim.validate.silicon.profiles import NoProfile, backend_profile

    key = (case.gpu, case.backend, case.model, case.precision, tp, case.kv_cache_dtype)
    if key not in found:
        try:
            found[key] = backend_profile(cache, *key)
        except NoProfile as e:
            found[key] = e
    got = found[key]
    if isinstance(got, NoProfile):
        raise got
    return Path(got)


def _run_one(
    case: Case,
    pre: Path,
    dec: Path,
    oh: str,
    per_client: int,
    start: str,
    delay: float,
    correction: Correction | None = None,
) -> dict[str, Any]:
    try:
        return {"status": "ok", "client_delay_mean_s": delay} | run_case(
            case, pre, dec, oh, per_client, start, delay, correction
        )
    except SunsimError as e:
        return {"status": "error", "reason": "simulation refused", "detail": str(e)}


def validate_silicon(
    csv: str | Path,
    *,
    max_rows: int | None = None,
    jobs: int = 1,
    overhead: bool = True,
    prompts_per_client: int = PROMPTS_PER_CLIENT,
    client_start: str = CLIENT_START,
    fit_set: bool = False,
    client_delay_mean_s: float = 0.0,
    corrections: dict[tuple[str, str], Correction] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per CSV row: its identity and shape, ``status`` (``ok``, ``skipped``,
    ``error``), ``reason``/``detail`` of a skip, and for the rows run ``sim_ttft_ms``,
    ``sim_tpot_ms``, ``ttft_rel_error``, ``tpot_rel_error`` ((sim - measured) / measured),
    ``profile``, ``engine_overhead``, ``method``, ``num_rejected``, ``wall_s``.

    ``max_rows``: simulate at most this many expressible rows (file order); ``jobs``:
    processes; ``overhead``: add the backend's fitted engine overhead where there is one;
    ``client_start``: ``staggered`` or ``together`` (:func:`~.mapping.run_case`);
    ``fit_set``: simulate the overhead fit set instead of the reported rows;
    ``client_delay_mean_s``: the clients' mean delay per request (seconds,
    :func:`~.mapping.client_delays`; the fitted one is :func:`~.client_fit.load_client_delay`);
    ``corrections``: (backend, system) -> fitted :class:`~.correction_fit.Correction` applied
    to the rows of that class (None or empty: none; the bundled ones are
    :func:`~.correction_fit.load_corrections`);
    ``on_progress(done, total)`` after each simulated row.

    Raises:
        ConfigError: an unreadable or malformed CSV (:func:`~.rows.read_silicon`).
    """
    df = read_silicon(csv)
    with tempfile.TemporaryDirectory(prefix="sunsim-silicon-") as tmp:
        out, todo = _plan(df, max_rows, Path(tmp), overhead, fit_set)
        total = len(todo)
        if on_progress is not None:
            on_progress(0, total)
        fixes = corrections or {}
        args = [
            (c, p, d, oh, prompts_per_client, client_start, client_delay_mean_s,
             fixes.get((c.backend, str(out[i]["system"]))))
            for i, c, p, d, oh in todo
        ]  # fmt: skip
        if jobs <= 1:
            for n, ((i, *_), a) in enumerate(zip(todo, args), 1):
                out[i].update(_run_one(*a))
                if on_progress is not None:
                    on_progress(n, total)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futs = {pool.submit(_run_one, *a): i for (i, *_), a in zip(todo, args)}
                for n, f in enumerate(as_completed(futs), 1):
                    out[futs[f]].update(f.result())
                    if on_progress is not None:
                        on_progress(n, total)
    res = pd.DataFrame(out)
    for what in ("ttft", "tpot"):
        sim = pd.to_numeric(res.get(f"sim_{what}_ms", math.nan), errors="coerce")
        res[f"{what}_rel_error"] = sim / res[f"silicon_{what}_ms"] - 1.0
    return res
