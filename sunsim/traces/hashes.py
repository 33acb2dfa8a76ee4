"""Prefix-block hashes of requests: parse, check, write, and derive them from session structure.

A request's ``hash_ids`` is a tuple of ints, one per block of ``hash_block_tokens`` prompt tokens
(the last block may be partial): block ``b`` covers prompt tokens ``[b * B, min((b + 1) * B,
prompt_tokens))``, so a prompt of ``P`` tokens has exactly ``ceil(P / B)`` ids. Two requests whose
first ``k`` ids are equal share their first ``k`` blocks of prompt (the key of a prefix cache:
vLLM's automatic prefix caching, SGLang's radix cache). Mooncake's FAST'25 traces
(kvcache-ai/Mooncake, ``FAST25-release/README.md``) publish such ids with ``B = 512`` tokens;
their conversation and synthetic traces have ``ceil(input_length / 512)`` ids on every line
(checked on all 12,031 and 3,993 lines).

Derived hashes (:func:`derive_hash_ids`), for traces with sessions but no ids: the turns of a
session are one growing context. Turn ``t``'s prompt is turn ``t-1``'s full context (its prompt
and output) followed by new tokens, so every turn's prompt is a prefix of one token stream per
session, and block ``b`` of that stream has one id: a hash of ``(session, epoch, b, r)`` where
``r`` is the number of tokens in the block (``B`` when full). Two turns thus share exactly their
common full blocks; a partial last block matches only a prompt of the same length (which the
stream model makes the same content). When a turn's prompt is shorter than the previous turn's
full context, that context was rewritten (truncated or summarised): the turn starts a new
*epoch* of the session with fresh ids (no sharing with earlier turns: the conservative choice),
and is counted. Blocks that lie wholly inside the first ``shared_prefix_tokens`` tokens (a
system prompt common to every session) hash without the session, so they are shared by all.

The ids are 63-bit (splitmix64 chained over the fields, Steele et al. 2014, "Fast splittable
pseudorandom number generators"), deterministic (the same session and lengths give the same
ids in any run or row subset); the chance that two different blocks collide among a million is
about 1e-7.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError, where

__all__ = [
    "HASH_BLOCK_TOKENS",
    "check_hash_block_tokens",
    "num_blocks",
    "parse_hash_ids",
    "check_hash_counts",
    "format_hash_ids",
    "derive_hash_ids",
]

#: Tokens per hashed block in Mooncake's FAST'25 traces (``FAST25-release/README.md``: "The
#: block size is 512 tokens"); the default everywhere a block size is not given.
HASH_BLOCK_TOKENS = 512
#: Largest hash id accepted (ids are stored as int64).
MAX_HASH_ID = 2**63 - 1
_SEP = re.compile(r"[ ;]+")
_TEXT_IDS = re.compile(r"\d+(?:[ ;]+\d+)*")
_FIX = "write hash_ids as whole numbers >= 0 separated by spaces, one per prompt block"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TAG_SESSION = 0x53455353  # "SESS"
_TAG_SHARED = 0x53484152  # "SHAR"


def check_hash_block_tokens(value: object, what: str = "hash_block_tokens") -> int:
    """``value`` as a block size in tokens (an integer from 1 to 1,048,576).

    Raises:
        ConfigError: anything else.
    """
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or not 1 <= int(value) <= 2**20
    ):
        raise ConfigError(f"{what} must be an integer from 1 to 1,048,576 tokens, got {value!r}")
    return int(value)


def num_blocks(prompt_tokens: np.ndarray, block_tokens: int) -> np.ndarray:
    """``ceil(prompt_tokens / block_tokens)`` per request (int64): its number of hash ids."""
    p = np.asarray(prompt_tokens, dtype=np.int64)
    out: np.ndarray = (p + block_tokens - 1) // block_tokens
    return out


def _ids_of(v: object) -> tuple[int, ...] | str:
    """One cell as a tuple of ids, or a short reason it is not one."""
    if isinstance(v, str):
        text = v.strip()
        if not text:
            return "empty"
        if not _TEXT_IDS.fullmatch(text):
            return "not whole numbers >= 0"
        ids = tuple(map(int, _SEP.split(text)))
    elif isinstance(v, (list, tuple)):
        if not v:
            return "empty"
        if not set(map(type, v)) <= {int} or min(v) < 0:  # type(True) is bool, not int
            return "not whole numbers >= 0"
        ids = tuple(v)
    elif isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0:
        ids = (int(v),)
    else:
        return "missing or not a list of ids"
    if max(ids) > MAX_HASH_ID:
        return f"an id over {MAX_HASH_ID}"
    return ids


def parse_hash_ids(values: pd.Series, p: Path, rows: np.ndarray, col: str) -> np.ndarray:
    """A ``hash_ids`` column as an object array of int tuples.

    A cell is a JSON list of ints (JSONL) or text with ids separated by spaces or semicolons
    (CSV), e.g. ``"0 14 15"``; ids are whole numbers from 0 to 2**63 - 1.

    Raises:
        TraceError: the first bad cell (empty, not whole numbers, negative, too large), naming
            the file, row and column, and counting the bad rows.
    """
    out = np.empty(len(values), dtype=object)
    bad: list[int] = []
    why = ""
    for i, v in enumerate(values.tolist()):
        ids = _ids_of(v)
        if isinstance(ids, str):
            if not bad:
                why = ids
            bad.append(i)
        else:
            out[i] = ids
    if bad:
        v = values.iloc[bad[0]]
        missing = v is None or (isinstance(v, float) and v != v)
        shown = "an empty value" if missing else repr(str(v)[:60])
        more = f" ({len(bad)} bad rows in this column)" if len(bad) > 1 else " (1 bad row)"
        raise TraceError(
            f"{where(p, int(rows[bad[0]]), col)}{shown} is not a list of block hash ids "
            f"({why}){more}; {_FIX}"
        )
    return out


def check_hash_counts(
    ids: np.ndarray, prompt: np.ndarray, block_tokens: int, p: Path, rows: np.ndarray, col: str
) -> None:
    """Check that every request has ``ceil(prompt_tokens / block_tokens)`` ids.

    Raises:
        TraceError: the first row with another count (a wrong block size, or a truncated list).
    """
    have = np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(ids))
    need = num_blocks(prompt, block_tokens)
    bad = np.flatnonzero(have != need)
    if len(bad):
        i = int(bad[0])
        n = len(bad)
        raise TraceError(
            f"{where(p, int(rows[i]), col)}{have[i]} hash ids for {int(prompt[i]):,} prompt "
            f"tokens, but blocks of {block_tokens} tokens make {need[i]} "
            f"({n} row{'s' if n > 1 else ''} like this); give one id per block (the last may be "
            f"partial), or the trace's block size (hash_block_tokens)"
        )


def format_hash_ids(ids: Iterable[int]) -> str:
    """The canonical CSV text of one request's ids: space-separated, e.g. ``"0 14 15"``."""
    return " ".join(str(int(x)) for x in ids)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _chain(*fields: np.ndarray) -> np.ndarray:
    h = np.zeros(len(fields[0]), dtype=np.uint64)
    for f in fields:
        h = _mix(h ^ f.astype(np.uint64))
    out: np.ndarray = (h >> np.uint64(1)).astype(np.int64)
    return out


def _epochs(
    session: np.ndarray, turn: np.ndarray, prompt: np.ndarray, output: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per request (original order): the epoch within its session, and whether it reset."""
    order = np.lexsort((turn, session))
    s, pr, out = session[order], prompt[order], output[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] != s[:-1]
    context_before = np.zeros(len(s), dtype=np.int64)
    context_before[1:] = pr[:-1] + out[:-1]
    reset = ~first & (pr < context_before)
    new_epoch = (first | reset).astype(np.int64)
    count = np.cumsum(new_epoch)
    start = np.maximum.accumulate(np.where(first, count, 0))
    epoch_sorted = count - start
    epoch = np.empty(len(s), dtype=np.int64)
    epoch[order] = epoch_sorted
    resets = np.zeros(len(s), dtype=bool)
    resets[order] = reset
    return epoch, resets


def derive_hash_ids(
    session: np.ndarray,
    turn: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    block_tokens: int = HASH_BLOCK_TOKENS,
    shared_prefix_tokens: int = 0,
) -> tuple[np.ndarray, int]:
    """Hash ids from session structure (module docstring): each turn's prompt extends the
    previous turn's full context, so its first blocks repeat that turn's ids.

    Args:
        session, turn: int64 per request; ``(session, turn)`` pairs are unique and the turns of
            a session are ordered by ``turn``.
        prompt, output: int64 tokens per request (prompt >= 1).
        block_tokens: tokens per block, ``B``.
        shared_prefix_tokens: tokens at the start of every session that are the same in all
            sessions (a common system prompt); their full blocks hash without the session.

    Returns:
        (object array of int tuples, ``ceil(prompt / B)`` ids each; the number of turns whose
        prompt is shorter than the previous turn's context, which start a new epoch).
    """
    session = np.asarray(session, dtype=np.int64)
    prompt = np.asarray(prompt, dtype=np.int64)
    output = np.asarray(output, dtype=np.int64)
    epoch, resets = _epochs(session, np.asarray(turn, dtype=np.int64), prompt, output)
    nb = num_blocks(prompt, block_tokens)
    req = np.repeat(np.arange(len(prompt)), nb)
    start = np.cumsum(nb) - nb
    b = np.arange(int(nb.sum()), dtype=np.int64) - np.repeat(start, nb)
    r = np.minimum(block_tokens, prompt[req] - b * block_tokens)
    shared = b * block_tokens + r <= shared_prefix_tokens
    zero = np.zeros(len(b), dtype=np.int64)
    tag = np.where(shared, _TAG_SHARED, _TAG_SESSION)
    h = _chain(
        tag,
        np.where(shared, zero, session[req]),
        np.where(shared, zero, epoch[req]),
        b,
        r,
    )
    out = np.empty(len(prompt), dtype=object)
    for i, part in enumerate(np.split(h, start[1:]) if len(prompt) else []):
        out[i] = tuple(part.tolist())
    return out, int(resets.sum())
