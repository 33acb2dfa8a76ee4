"""The optional session columns of traces: ``session_id``, ``turn``, ``hash_ids``.

Mooncake JSONL keeps its ``hash_ids``; the canonical CSV reads and writes all three; hashes
derived from session structure share prefixes exactly as stated in ``sunsim/traces/hashes.py``;
the columns survive the read options and model labelling; bad values are one line, exit 2.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.errors import TraceError
from sunsim.traces import label_models, read_trace, trace_info, write_canonical
from sunsim.traces.hashes import derive_hash_ids
from sunsim.traces.info import prefix_reuse

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "mooncake_sessions.jsonl"


def _lines(p: Path) -> list[dict]:
    return [json.loads(s) for s in p.read_text().splitlines() if s.strip()]


def _common(a: tuple, b: tuple) -> int:
    """Length of the common leading run of two id tuples."""
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


# --- the fixture ------------------------------------------------------------------------------


def test_fixture_regenerates_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixture", DATA / "make_mooncake_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == FIXTURE.read_bytes()


def test_fixture_is_mooncake_shaped():
    lines = _lines(FIXTURE)
    assert 200 <= len(lines) <= 400
    assert all(set(x) == {"timestamp", "input_length", "output_length", "hash_ids"} for x in lines)
    assert all(len(x["hash_ids"]) == math.ceil(x["input_length"] / 512) for x in lines)
    assert all(x["hash_ids"][0] == 0 for x in lines)
    # ids are consecutive integers in order of first appearance, as in Mooncake's traces
    seen: list[int] = []
    for x in lines:
        seen += [i for i in x["hash_ids"] if i not in set(seen)]
    assert seen == list(range(len(seen)))
    # realistic sharing: many requests extend an earlier request's prefix by more than block 0
    longer = sum(
        any(_common(tuple(x["hash_ids"]), tuple(y["hash_ids"])) > 1 for y in lines[:i])
        for i, x in enumerate(lines)
    )
    assert longer > len(lines) // 3


# --- readers keep the columns ------------------------------------------------------------------


def test_mooncake_reader_keeps_hash_ids():
    lines = _lines(FIXTURE)
    t = read_trace(FIXTURE)
    df = t.requests
    assert list(df.columns)[-1] == "hash_ids" and "session_id" not in df.columns
    assert df.attrs == {"hash_block_tokens": 512, "hash_ids_source": "trace"}
    assert t.hash_block_tokens == 512 and t.sessions.hash_ids_source == "trace"
    for row, ids in zip(df["row"], df["hash_ids"], strict=True):
        assert ids == tuple(lines[row - 1]["hash_ids"])
        assert all(type(i) is int for i in ids)


def test_columns_survive_window_cap_rate_scale_and_labelling():
    lines = _lines(FIXTURE)
    t = read_trace(FIXTURE, window=(100.0, 2000.0), max_requests=50, rate_scale=2.0)
    df = t.requests
    assert len(df) == 50 and df["arrival_s"].iloc[0] == 0.0
    assert df.attrs["hash_block_tokens"] == 512
    assert [tuple(lines[r - 1]["hash_ids"]) for r in df["row"]] == list(df["hash_ids"])
    labelled = label_models(df, ["a", "b"], zipf_alpha=1.0, rng=np.random.default_rng(0))
    assert labelled["hash_ids"].tolist() == df["hash_ids"].tolist()
    assert labelled.attrs["hash_block_tokens"] == 512


def test_canonical_round_trip_with_session_columns(tmp_path):
    df = pd.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.5],
            "model": ["a", "b", "a"],
            "prompt_tokens": [600, 1100, 20],
            "output_tokens": [5, 6, 7],
            "session_id": [3, 3, 9],
            "turn": [0, 1, 0],
            "hash_ids": [(1, 2), (1, 7, 8), (2**63 - 1,)],
        }
    )
    p = write_canonical(df, tmp_path / "s.csv")
    assert p.read_text().splitlines()[2] == "1.000000,b,1100,6,3,1,1 7 8"
    t = read_trace(p)
    out = t.requests
    assert list(out.columns[-3:]) == ["session_id", "turn", "hash_ids"]
    assert out["session_id"].dtype == np.int64 and out["turn"].dtype == np.int64
    assert out["hash_ids"].tolist() == df["hash_ids"].tolist()
    assert t.sessions.num_sessions == 2 and t.sessions.hash_ids_source == "trace"


def test_canonical_semicolons_and_block_size_option(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("arrival_s,prompt_tokens,output_tokens,hash_ids\n0,10,1,4;5;6\n1,4,1,4\n")
    t = read_trace(p, hash_block_tokens=4)
    assert t.requests["hash_ids"].tolist() == [(4, 5, 6), (4,)]
    assert t.requests.attrs["hash_block_tokens"] == 4
    with pytest.raises(TraceError, match=r"row 1, column 'hash_ids': 3 hash ids for 10 prompt"):
        read_trace(p)  # blocks of 512 tokens: one id each


def test_no_session_columns_changes_nothing(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("arrival_s,model,prompt_tokens,output_tokens\n0,a,5,1\n")
    t = read_trace(p)
    assert list(t.requests.columns) == [
        "arrival_s",
        "prompt_tokens",
        "output_tokens",
        "source_model",
        "row",
    ]
    assert t.requests.attrs == {} and t.hash_block_tokens is None
    assert "prefix_reuse" not in trace_info(t) and "num_sessions" not in trace_info(t)


# --- hashes from session structure --------------------------------------------------------------


def test_derived_hashes_hand_checked():
    # Blocks of 4 tokens. Session 7: turn 0 prompt 6 (+3 out) -> turn 1 prompt 11 (+1 out)
    # -> turn 2 prompt 17. Session 8: one turn of prompt 6.
    ids, resets = derive_hash_ids(
        np.array([7, 7, 7, 8]),
        np.array([0, 1, 2, 0]),
        np.array([6, 11, 17, 6]),
        np.array([3, 1, 2, 3]),
        block_tokens=4,
    )
    assert resets == 0
    assert [len(x) for x in ids] == [2, 3, 5, 2]  # ceil(prompt / 4)
    t0, t1, t2, other = ids
    # turn 1 repeats turn 0's one full block; turn 0's partial block (2 tokens) has grown
    assert _common(t0, t1) == 1 and t0[1] != t1[1]
    # turn 2 repeats turn 1's two full blocks; turn 1's partial block has grown
    assert _common(t1, t2) == 2 and t1[2] != t2[2]
    assert _common(t0, t2) == 1
    # another session with the same lengths shares nothing
    assert not set(other) & set(t0 + t1 + t2)
    # all ids distinct within the session except the shared prefixes
    assert len(set(t0 + t1 + t2)) == 2 + 3 + 5 - 1 - 2 - 0


def test_derived_hashes_shared_system_prompt_and_reset():
    ids, resets = derive_hash_ids(
        np.array([1, 2, 2]),
        np.array([0, 0, 1]),
        np.array([14, 14, 13]),  # session 2's turn 1 is shorter than the context before it (15)
        np.array([1, 1, 1]),
        block_tokens=4,
        shared_prefix_tokens=8,
    )
    a, b, c = ids
    assert resets == 1
    # 8 shared tokens: two full blocks common to every session; block 2 is the session's own
    assert a[:2] == b[:2] and a[2] != b[2]
    # a rewritten context keeps the system prompt, but its own full block 2 (same length and
    # position as turn 0's) is fresh: a new epoch shares nothing with the turns before it
    assert c[:2] == b[:2] and c[2] != b[2]
    same_epoch, _ = derive_hash_ids(
        np.array([2, 2]), np.array([0, 1]), np.array([14, 16]), np.array([1, 1]), 4, 8
    )
    assert same_epoch[1][2] == b[2]  # without the reset, block 2 is shared


def test_derived_hashes_do_not_depend_on_other_rows():
    s, t = np.array([5, 5, 6]), np.array([0, 1, 0])
    p, o = np.array([700, 1300, 100]), np.array([50, 60, 70])
    full, _ = derive_hash_ids(s, t, p, o)
    part, _ = derive_hash_ids(s[1:], t[1:], p[1:], o[1:])
    assert list(full[1:]) == list(part)
    assert full[1][:1] == full[0][:1] and full[1][1] != full[0][1]  # 700 tokens: 1 full block


def test_read_session_trace_derives_hashes_before_the_window(tmp_path):
    p = tmp_path / "sess.csv"
    p.write_text(
        "arrival_s,prompt_tokens,output_tokens,session_id\n"
        "0,600,100,1\n"
        "1,800,20,2\n"
        "5,1200,30,1\n"
        "9,2000,5,1\n"
    )
    t = read_trace(p)
    df = t.requests
    assert df["turn"].tolist() == [0, 0, 1, 2]  # by arrival within the session
    assert t.sessions.hash_ids_source == "session structure" and t.sessions.num_sessions == 2
    ids = df["hash_ids"].tolist()
    assert _common(ids[0], ids[2]) == 1 and _common(ids[2], ids[3]) == 2
    assert not set(ids[1]) & set(ids[0] + ids[2] + ids[3])
    w = read_trace(p, window=(4.0, 100.0)).requests
    assert w["hash_ids"].tolist() == ids[2:] and w["turn"].tolist() == [1, 2]
    info = trace_info(t)
    assert info["num_sessions"] == 2 and info["hash_ids_source"] == "session structure"


def test_prefix_reuse_hand_checked():
    ids = [(1, 2, 3), (1, 2, 9), (5,), (1, 2, 3)]
    prompt = np.array([10, 12, 3, 9])
    # blocks of 4: hits 0, 8 (two blocks), 0, 9 (all three, the last partial) of 34 tokens
    assert prefix_reuse(ids, prompt, 4) == pytest.approx(17 / 34)


# --- bad values: one line, exit 2 --------------------------------------------------------------

runner = CliRunner()

BAD = [
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,hash_ids\n0,5,1,1\n1,5,1,1 x\n",
        r"c\.csv: row 2, column 'hash_ids': '1 x' is not a list of block hash ids",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,hash_ids\n0,5,1,\n",
        r"c\.csv: row 1, column 'hash_ids': an empty value is not a list of block hash ids",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,hash_ids\n0,5,1,-3\n",
        r"row 1, column 'hash_ids': '-3' is not a list of block hash ids \(not whole numbers",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,hash_ids\n0,600,1,4\n",
        r"row 1, column 'hash_ids': 1 hash ids for 600 prompt tokens, but blocks of 512 tokens "
        r"make 2",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,session_id\n0,5,1,1\n1,5,1,2.5\n",
        r"c\.csv: row 2, column 'session_id': '2.5' is not a whole number >= 0",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,session_id,turn\n0,5,1,1,0\n1,5,1,1,0\n",
        r"c\.csv: row 1, column 'turn': session 1 has turn 0 twice \(rows 1 and 2\)",
    ),
    (
        "c.csv",
        "arrival_s,prompt_tokens,output_tokens,turn\n0,5,1,0\n",
        r"c\.csv: column 'turn': a 'turn' column needs a 'session_id' column",
    ),
    (
        "m.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n'
        '{"timestamp": 1, "input_length": 5, "output_length": 1}\n',
        r"m\.jsonl: row 2, column 'hash_ids': this line lacks key 'hash_ids' but line 1 has it",
    ),
    (
        "m.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
        '{"timestamp": 1, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n',
        r"m\.jsonl: row 2, column 'hash_ids': this line has key 'hash_ids' but line 1 lacks it",
    ),
    (
        "m.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [true]}\n',
        r"m\.jsonl: row 1, column 'hash_ids': '\[True\]' is not a list of block hash ids",
    ),
    (
        "m.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1], '
        '"hash_ids": [2]}\n',
        r"m\.jsonl: row 1, column 'hash_ids': key 'hash_ids' appears twice",
    ),
    (
        "m.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": []}\n',
        r"m\.jsonl: row 1, column 'hash_ids': '\[\]' is not a list of block hash ids \(empty\)",
    ),
]


@pytest.mark.parametrize("name,text,pattern", BAD)
def test_bad_session_values_one_line_exit_2(tmp_path, name, text, pattern):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(TraceError, match=pattern):
        read_trace(p)
    r = runner.invoke(app, ["trace", "info", str(p)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    out = r.output.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error:") and "Traceback" not in out


# --- sessions inferred from shared prefixes (Mooncake) ------------------------------------------


def test_infer_sessions_hand_checked():
    from sunsim.traces.sessions import infer_sessions

    ids = [(0, 1, 2), (0, 1, 2, 3), (0, 5), (0, 1, 9), (0, 5, 6), (7, 8)]
    # (0, 5) shares only block 0 (< 2 blocks): a new session; (0, 5, 6) continues it
    assert infer_sessions(ids).tolist() == [0, 0, 1, 0, 1, 2]
    assert infer_sessions(ids, min_shared_blocks=1).tolist() == [0, 0, 0, 0, 0, 1]


def test_inferred_sessions_on_the_fixture():
    from sunsim.traces.sessions import with_inferred_sessions

    df = with_inferred_sessions(read_trace(FIXTURE).requests)
    assert list(df.columns[-3:]) == ["session_id", "turn", "hash_ids"]
    # 80 generated conversations; a conversation whose first prompt has under 2 full blocks
    # cannot be followed past block 0, so it may split
    assert 80 <= df["session_id"].nunique() <= 85
    for _, s in df.groupby("session_id"):
        ids = s["hash_ids"].tolist()
        assert s["turn"].tolist() == list(range(len(s)))
        for k in range(1, len(ids)):
            assert max(_common(ids[k], x) for x in ids[:k]) >= 2


def test_cli_assign_mooncake_infers_sessions(tmp_path):
    out = tmp_path / "o.csv"
    r = runner.invoke(
        app,
        ["trace", "assign", str(FIXTURE), str(out), "--models", "p,a,c"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "sessions inferred from shared prefixes of >= 2 blocks" in r.output
    df = read_trace(out).requests
    lines = _lines(FIXTURE)
    assert [tuple(lines[i]["hash_ids"]) for i in range(len(lines))] == df["hash_ids"].tolist()
    assert (df.loc[df["turn"] % 3 == 0, "source_model"] == "p").all()
