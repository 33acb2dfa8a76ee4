"""Write ``mooncake_sessions.jsonl``: a small synthetic trace in Mooncake's FAST'25 JSONL format.

Run from the repository root: ``python tests/data/make_mooncake_fixture.py`` (it writes the same
file byte for byte; ``tests/test_traces_sessions.py`` checks that). No line comes from the real
trace; the shapes imitate it:

* the format of ``kvcache-ai/Mooncake`` ``FAST25-release/traces/*.jsonl``: ``timestamp`` (ms from
  the first request), ``input_length``, ``output_length``, ``hash_ids`` with one id per block of
  512 tokens, the last block partial (``ceil(input_length / 512)`` ids), ids remapped to
  consecutive integers in order of first appearance;
* every request starts with id 0, a 512-token system prompt (true of all 12,031 lines of the
  conversation trace);
* conversations: each turn's prompt is the previous turn's prompt and output plus a new user
  message, so it repeats the previous turn's full blocks (the partial last block grows, so it
  gets a new id), like the chains of shared prefixes in the real trace;
* lengths and gaps: first prompts lognormal (median 3,000, p99 30,000 tokens), follow-up
  messages (median 200, p99 2,000), outputs (median 350, p99 1,100; the conversation trace's
  output p50 is 350, p99 1,118), gaps between turns lognormal (median 147 s, p90 552 s: in the
  conversation trace the median gap between a request and the earlier one whose prefix it
  extends is 147 s, p90 552 s); conversations arrive as a Poisson process, 0.25 per second.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("mooncake_sessions.jsonl")
BLOCK = 512
SYSTEM = 512
SEED = 20250225
NUM_CONVERSATIONS = 80
Z99, Z90 = 2.3263478740408408, 1.2815515655446004


def lognormal(rng: np.random.Generator, median: float, q: float, z: float) -> float:
    """One draw of a lognormal with the given median and quantile ``q`` at normal score ``z``."""
    return float(rng.lognormal(math.log(median), math.log(q / median) / z))


def main(out: Path = OUT) -> None:
    """Write the fixture to ``out``."""
    rng = np.random.default_rng(SEED)
    next_id = 1  # id 0 is the shared system prompt block
    calls: list[tuple[int, int, int, list[int]]] = []
    start = 0.0
    for _ in range(NUM_CONVERSATIONS):
        start += float(rng.exponential(4.0))
        turns = int(rng.geometric(0.3))  # 1 to ~10 turns, mean 3.3
        t = start
        prompt = SYSTEM + max(1, round(lognormal(rng, 3000, 30000, Z99)))
        ids = [0]  # the system prompt's block
        output = 0
        for k in range(turns):
            if k:
                t += lognormal(rng, 147, 552, Z90)
                prompt = prompt + output + max(1, round(lognormal(rng, 200, 2000, Z99)))
            fresh = math.ceil(prompt / BLOCK) - len(ids)
            ids = ids + list(range(next_id, next_id + fresh))
            next_id += fresh
            output = max(1, min(4096, round(lognormal(rng, 350, 1100, Z99))))
            calls.append((round(t * 1000), prompt, output, ids))
            ids = ids[: prompt // BLOCK]  # full blocks carry over; the rest is new content
    calls.sort(key=lambda c: c[0])
    t0 = calls[0][0]
    remap: dict[int, int] = {}  # ids in order of first appearance in the file, as Mooncake's
    with out.open("w") as f:
        for ts, prompt, output, ids in calls:
            line = {"timestamp": ts - t0, "input_length": prompt, "output_length": output}
            new = [remap.setdefault(i, len(remap)) for i in ids]
            f.write(json.dumps({**line, "hash_ids": new}) + "\n")
    print(f"wrote {len(calls)} requests to {out}")


if __name__ == "__main__":
    main()
