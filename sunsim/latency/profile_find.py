"""Finding a profile directory: under a path a user gives (:func:`resolve_profile`), or the
bundled one for a GPU, model and precision (:func:`find_profile`)."""

from __future__ import annotations

import json
from pathlib import Path

from sunsim.errors import ProfileError
from sunsim.specs import get_precision


def resolve_profile(
    path: str | Path, model: str | None = None, precision: str | None = None
) -> Path:
    """The ``<model>/<precision>`` profile directory for ``path``.

    ``path`` may be a precision directory (holding meta.json), a model directory
    (``profiles/<device>/<model>``) or a device directory (``profiles/<device>``). Raises
    :class:`ProfileError` listing the profiles found when none matches.
    """
    p = Path(path)
    if not p.is_dir():
        raise ProfileError(
            f"{p}: no such profile directory; make one with `sunsim profile "
            "--model NAME --device cuda|cpu` or pass a directory under profiles/"
        )
    if any((p / f).exists() for f in ("meta.json", "decode.csv", "prefill.csv")):
        return p  # a precision directory (from_dir reports what is missing in it)
    prec = get_precision(precision).name if precision else None
    cands = []
    if model and prec:
        cands.append(p / model / prec)
    if prec:
        cands.append(p / prec)
    for c in cands:
        if (c / "meta.json").exists():
            return c
    found = sorted(
        str(m.parent.relative_to(p))
        for depth in ("*", "*/*", "*/*/*")
        for m in p.glob(f"{depth}/meta.json")
    )
    if model is None and prec is None and len(found) == 1:
        return p / found[0]
    want = "/".join(x for x in (model, prec) if x) or "any model/precision"
    there = ", ".join(found) if found else "no profiles"
    raise ProfileError(
        f"{p}: no profile for {want} (found: {there}); profile it with "
        f"`sunsim profile --model {model or 'NAME'} --precision "
        f"{prec or 'bf16'}` or pass the directory of a matching profile"
    )


def find_profile(
    root: str | Path,
    gpu_key: str | None,
    model: str,
    precision: str,
    tensor_parallel_size: int = 1,
) -> Path | None:
    """A profile under ``root`` (``profiles/``) for ``model`` at ``precision`` whose meta
    ``gpu_key`` equals ``gpu_key`` (``h100``/``h200``/``a100``; None for CPU profiles),
    measured on one GPU of ``tensor_parallel_size`` (meta ``source.tensor_parallel_size``;
    profiles without it are tensor parallel 1).

    Quick (test-grid) profiles are never returned. The first match in sorted device order,
    or None when there is none.
    """
    r = Path(root)
    prec = get_precision(precision).name
    if not r.is_dir():
        return None
    for meta_path in sorted(r.glob(f"*/{model}/{prec}/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("quick"):
            continue
        src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
        if int(src.get("tensor_parallel_size") or 1) != tensor_parallel_size:
            continue
        if (
            meta.get("gpu_key") == gpu_key
            and meta.get("model") == model
            and meta.get("precision") == prec
        ):
            return meta_path.parent
    return None
