"""A content-addressed result cache, shared by ``sunsim plan`` and ``sunsim sweep``.

A result (a plan's simulation evaluation, a sweep point's rows) is stored under a key that
hashes everything it depends on, by content:

* the trace file's bytes (SHA-256; never its path, size or mtime, so a copy of the trace
  elsewhere, or a touched one, gives the same key, and an edited one a new key);
* the resolved scenario (:func:`~sunsim.config.scenario_to_toml_dict`, with the trace path
  and the ``[latency] profile`` path replaced by their contents' digests);
* the latency models the run resolves to: their description and method, and the bytes of
  every file of the profile directories they were read from (so a re-imported or edited
  profile gives a new key, and so does a bundled profile appearing where the roofline was
  used);
* the sunsim version and :data:`KEY_FORMAT`.

Keys are SHA-256 hex digests of canonical JSON (sorted keys, Python's shortest float repr), so
two machines computing the key of the same work get the same string.

On disk (:class:`ResultCache`): one JSON file per key, ``ROOT/<namespace>/<key[:2]>/<key>.json``
holding ``{"key", "sunsim", "value"}``. Writes go to a temporary file in the same directory and
are then renamed over the final name (:func:`os.replace`, atomic on POSIX file systems), so a
reader (another process, another machine on a shared path) sees either no entry or a whole
one, never a torn write; two writers of one key write the same value, and either rename wins.
A file that does not parse or names another key is a miss, never an error: a cache is only
ever a shortcut. ``ROOT`` is ``--cache-dir``, else ``$SUNSIM_CACHE_DIR``, else
``$XDG_CACHE_HOME/sunsim``, else ``~/.cache/sunsim`` (:func:`default_cache_dir`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sunsim import __version__
from sunsim.config import Scenario, scenario_to_toml_dict
from sunsim.errors import ConfigError

#: Environment variable naming the cache directory (overridden by ``--cache-dir``).
CACHE_ENV = "SUNSIM_CACHE_DIR"
#: Bumped when what a key covers, or how a value is stored, changes.
KEY_FORMAT = 1
#: Scenario fields that never change which latency model a scenario resolves to (what the
#: latency fingerprints of :class:`Fingerprints` are memoised over; any other field, including
#: ones added later, is part of the memo key, so a new field can only cost a re-resolve).
_NOT_LATENCY = (
    "trace",
    "trace_format",
    "keep_failed",
    "sort_arrivals",
    "window_s",
    "rate_scale",
    "max_requests",
    "zipf",
    "shares",
    "model_map",
    "served_models",
    "modes",
    "prefill_workers",
    "decode_workers",
    "slo_ttft_s",
    "slo_tpot_s",
    "slo_attainment",
    "seed",
)


def default_cache_dir() -> Path:
    """``$SUNSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/sunsim``, else ``~/.cache/sunsim``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sunsim"


def _canonical(o: Any) -> Any:
    """JSON fallback: numpy scalars as Python numbers, tuples/sets as lists, paths as text."""
    if hasattr(o, "item") and callable(o.item):
        return o.item()
    if isinstance(o, set | frozenset):
        return sorted(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def content_key(kind: str, payload: Mapping[str, Any]) -> str:
    """The key of a result of ``kind`` (e.g. ``plan-sim``, ``sweep-replay``) that depends on
    ``payload`` (JSON-able, built from content digests, not paths): a SHA-256 hex digest of
    the canonical JSON of (kind, payload, sunsim version, :data:`KEY_FORMAT`)."""
    text = json.dumps(
        {"kind": kind, "sunsim": __version__, "format": KEY_FORMAT, "payload": payload},
        sort_keys=True,
        separators=(",", ":"),
        default=_canonical,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Fingerprints:
    """Content digests of what results depend on, memoised for the life of the object (one
    plan or one sweep): files by (path, inode, size, mtime, ctime) -- the stat only decides
    whether to hash again, the digest is of the bytes -- and latency fingerprints by the
    scenario's latency settings."""

    def __init__(self) -> None:
        self._files: dict[tuple[Any, ...], str] = {}
        self._latency: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def file(self, path: str | os.PathLike[str]) -> str:
        """SHA-256 hex digest of the file's bytes. Raises :class:`OSError` if unreadable."""
        p = Path(path).resolve()
        st = p.stat()
        stamp = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if stamp not in self._files:
            self._files[stamp] = _sha256_file(p)
        return self._files[stamp]

    def tree(self, path: str | os.PathLike[str]) -> str:
        """Digest of a directory (every file below it: relative path and bytes, sorted) or of
        a file's bytes."""
        p = Path(path)
        if not p.is_dir():
            return self.file(p)
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f"{f.relative_to(p).as_posix()}\0{self.file(f)}\n".encode())
        return h.hexdigest()

    def latency_model(self, lat: Any) -> dict[str, Any]:
        """What a latency model contributes to a key: its description and method and the
        digests of the profile directories it was read from (``path``, ``prefill_path`` of a
        :class:`~sunsim.latency.profiled.ProfiledLatency`; none for the roofline, whose
        formulas are the sunsim version's)."""
        dirs = []
        for attr in ("path", "prefill_path"):
            d = getattr(lat, attr, None)
            if d is not None and str(d) not in dirs:
                dirs.append(str(d))
        return {
            "description": getattr(lat, "description", ""),
            "method": getattr(lat, "method", ""),
            "profiles": [self.tree(d) for d in dirs if Path(d).exists()],
        }

    def scenario(self, s: Scenario) -> dict[str, Any]:
        """The scenario's TOML tables with ``[trace] path`` and ``[latency] profile`` replaced
        by ``{"sha256": digest}`` of their contents (the bundled trace when none is set).

        Raises :class:`~sunsim.errors.ConfigError` when the trace cannot be read."""
        from sunsim.data import default_trace

        d = scenario_to_toml_dict(s)
        trace = Path(s.trace) if s.trace else default_trace()
        try:
            d["trace"]["path"] = {"sha256": self.file(trace)}
        except OSError as e:
            raise ConfigError(f"{trace}: cannot read the trace: {e.strerror or e}") from None
        if s.profile:
            d["latency"]["profile"] = {"sha256": self.tree(s.profile)}
        return d

    def scenario_latency(self, s: Scenario) -> list[dict[str, Any]]:
        """The fingerprints (:meth:`latency_model`) of every latency model the scenario's
        modes resolve to (prefill at ``prefill_precision``, decode at each mode's decode
        precision), in mode order. Raises what :func:`sunsim.replay.resolve_latency` raises."""
        from sunsim.replay import resolve_latency

        key = (s.modes,) + tuple(
            (f.name, getattr(s, f.name))
            for f in dataclasses.fields(s)
            if f.name not in _NOT_LATENCY
        )
        if key not in self._latency:
            out = []
            for mode in s.modes:
                cl = s.cluster(mode, [1.0] * len(s.served_models))
                pools = ((s.prefill_precision, "prefill"), (str(cl.decode_precision), "decode"))
                for precision, role in pools:
                    lat, _ = resolve_latency(s, precision, role)
                    out.append({"role": role, "precision": precision, **self.latency_model(lat)})
            self._latency[key] = out
        return self._latency[key]


class ResultCache:
    """Results by :func:`content_key`, in memory and (``root`` given) on disk under
    ``root/namespace`` (module docstring: layout, atomic writes). Values are JSON-able
    (NaN and infinities allowed).

    ``hits`` / ``stores``: lookups answered / values written by this object.
    """

    def __init__(self, root: str | os.PathLike[str] | None, namespace: str) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.namespace = namespace
        self._memory: dict[str, Any] = {}
        self.hits = 0
        self.stores = 0

    @property
    def directory(self) -> Path | None:
        """``root/namespace``, or None for a memory-only cache."""
        return self.root / self.namespace if self.root is not None else None

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.json"

    def check_writable(self, what: str = "--cache-dir") -> None:
        """Create the cache directory and check a file can be written there.

        Raises :class:`~sunsim.errors.ConfigError` (one line naming ``what`` and the path)."""
        d = self.directory
        if d is None:
            return
        try:
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".probe-"):
                pass
        except OSError as e:
            raise ConfigError(
                f"{what} {self.root}: not a writable directory ({e.strerror or e}); "
                "give another with --cache-dir or run with --no-cache"
            ) from None

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or None (missing, unreadable or not this key)."""
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        if self.directory is None:
            return None
        try:
            data = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != key or "value" not in data:
            return None
        self._memory[key] = data["value"]
        self.hits += 1
        return data["value"]

    def __contains__(self, key: str) -> bool:
        if key in self._memory:
            return True
        return self.directory is not None and self._path(key).is_file()

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``: in memory, and on disk by write-then-rename. A disk
        that refuses the write leaves the memory copy only (a cache is a shortcut)."""
        self._memory[key] = value
        self.stores += 1
        if self.directory is None:
            return
        text = json.dumps({"key": key, "sunsim": __version__, "value": value}, default=_canonical)
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def disk_keys(self) -> list[str]:
        """The keys stored on disk (complete entries only; temporary files are skipped)."""
        d = self.directory
        if d is None or not d.is_dir():
            return []
        return sorted(p.stem for p in d.glob("??/*.json"))
