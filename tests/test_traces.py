"""Tests for sunsim.traces: readers, validation, options, model labelling, info and synth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_trace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sunsim.data import default_trace
from sunsim.errors import ConfigError, TraceError
from sunsim.traces import (
    CANONICAL_COLUMNS,
    REQUEST_COLUMNS,
    LognormalLengths,
    label_models,
    model_counts,
    read_trace,
    synth_trace,
    trace_info,
    write_canonical,
    zipf_shares,
)

SERVED = ("math", "code", "tool")


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def _names(s: pd.Series) -> list:
    return [None if pd.isna(v) else str(v) for v in s.astype(object)]


def _check_frame(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == REQUEST_COLUMNS
    assert df["arrival_s"].dtype == np.float64
    assert df["prompt_tokens"].dtype == np.int64
    assert df["output_tokens"].dtype == np.int64
    assert df["row"].dtype == np.int64
    assert isinstance(df["source_model"].dtype, pd.StringDtype)
    assert list(df.index) == list(range(len(df)))
    t = df["arrival_s"].to_numpy()
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert (df["prompt_tokens"] >= 1).all() and (df["output_tokens"] >= 1).all()


# --- real traces ------------------------------------------------------------------------------


def test_azure_code_reads_with_readme_counts():
    t = read_trace(require_trace("azure_llm_2023_code.csv"))
    _check_frame(t.requests)
    assert (t.format, t.num_rows, len(t.requests), t.num_failed) == ("azure", 8819, 8819, 0)
    assert t.source_models == {} and t.requests["source_model"].isna().all()
    info = trace_info(t)
    assert info["mean_rate"] == pytest.approx(2.57, abs=0.01)
    assert 11 < info["interarrival_cv"] < 15
    assert info["prompt_tokens"]["p50"] == 1469 and info["prompt_tokens"]["p99"] == 7436
    # 7 fractional digits: 18:17:04.0319600 - 18:17:03.9799600 = 0.052 s exactly (to float).
    assert t.requests["arrival_s"].iloc[1] == pytest.approx(0.052, abs=1e-9)


def test_azure_conv_reads_with_readme_counts():
    t = read_trace(require_trace("azure_llm_2023_conv.csv"), fmt="azure")
    assert (t.num_rows, len(t.requests)) == (19366, 19366)
    info = trace_info(t)
    assert info["mean_rate"] == pytest.approx(5.53, abs=0.01)
    assert 1.0 < info["interarrival_cv"] < 1.2
    assert (info["prompt_tokens"]["p50"], info["output_tokens"]["p50"]) == (1020, 129)


def test_burstgpt_head_failures_counted_and_excluded():
    path = require_trace("burstgpt_1_head.csv")
    t = read_trace(path)
    _check_frame(t.requests)
    assert (t.format, t.num_rows, t.num_failed, t.num_failed_excluded) == ("burstgpt", 54, 3, 3)
    assert len(t.requests) == 51
    assert t.source_models == {"ChatGPT": 36, "GPT-4": 15}
    assert t.requests["row"].iloc[0] == 1
    kept = read_trace(path, keep_failed=True)
    assert (len(kept.requests), kept.num_failed, kept.num_failed_excluded) == (54, 3, 0)
    assert kept.source_models == {"ChatGPT": 38, "GPT-4": 16}
    raw = pd.read_csv(path)
    failed_rows = set(np.flatnonzero(raw["Response tokens"].to_numpy() == 0) + 1)
    failed = kept.requests[kept.requests["row"].isin(failed_rows)]
    assert len(failed) == 3 and (failed["output_tokens"] == 1).all()
    assert (failed["prompt_tokens"] >= 1).all()
    assert trace_info(t)["span_s"] == 3298 - 5


def test_burstgpt_v2_layout_reads_the_same(tmp_path):
    path = require_trace("burstgpt_1_head.csv")
    raw = pd.read_csv(path)
    raw.insert(1, "Session ID", np.arange(len(raw)) % 7)
    raw.insert(2, "Elapsed time", 1.5)
    v2 = tmp_path / "BurstGPT_3.csv"
    raw.to_csv(v2, index=False)
    a, b = read_trace(path), read_trace(v2)
    assert b.format == "burstgpt"
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert (b.num_rows, b.num_failed) == (a.num_rows, a.num_failed)


def test_columns_go_by_name_not_position(tmp_path):
    p = _write(
        tmp_path,
        "az.csv",
        "GeneratedTokens,ContextTokens,TIMESTAMP\n"
        "10,100,2023-11-16 18:17:04.5000000\n"
        "20,200,2023-11-16 18:17:03.9799600\n",
    )
    df = read_trace(p).requests
    assert df["prompt_tokens"].tolist() == [200, 100]
    assert df["output_tokens"].tolist() == [20, 10]
    assert df["row"].tolist() == [2, 1]
    assert df["arrival_s"].iloc[1] == pytest.approx(0.52004, abs=1e-9)


# --- other formats ----------------------------------------------------------------------------


def test_mooncake_jsonl(tmp_path):
    lines = [
        # hash_ids are checked and kept: tests/test_traces_sessions.py
        {"timestamp": 27482, "input_length": 6955, "output_length": 52},
        {"timestamp": 0, "input_length": 6472, "output_length": 8},
        {"timestamp": 30535, "input_length": 100, "output_length": 0},
    ]
    p = _write(tmp_path, "mooncake.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    with pytest.raises(TraceError, match=r"row 2, column 'timestamp': '0' is 27\.482 s earlier"):
        read_trace(p)  # out of order by more than the jitter tolerance
    t = read_trace(p, sort_arrivals=True)
    _check_frame(t.requests)
    assert t.format == "mooncake" and t.num_rows == 3 and t.num_reordered == 1
    assert t.requests["arrival_s"].tolist() == pytest.approx([0.0, 27.482, 30.535])
    assert t.requests["row"].tolist() == [2, 1, 3]
    # A zero output is kept with the prefill's one token and counted, never dropped.
    assert t.requests["output_tokens"].tolist() == [8, 52, 1] and t.num_zero_output == 1


def test_canonical_round_trip_and_empty_model(tmp_path):
    df = pd.DataFrame(
        {
            "arrival_s": [0.0, 0.5, 1.25],
            "model": ["math", None, "tool"],
            "prompt_tokens": [10, 20, 30],
            "output_tokens": [1, 2, 3],
        }
    )
    p = write_canonical(df, tmp_path / "c.csv")
    assert p.read_text().splitlines()[:2] == [
        "arrival_s,model,prompt_tokens,output_tokens",
        "0.000000,math,10,1",
    ]
    t = read_trace(p)
    assert t.format == "canonical" and t.source_models == {"math": 1, "tool": 1}
    assert t.requests["source_model"].isna().tolist() == [False, True, False]
    # The canonical format's model column is optional.
    q = _write(tmp_path, "nomodel.csv", "arrival_s,prompt_tokens,output_tokens\n3,5,6\n1,5,6\n")
    r = read_trace(q, sort_arrivals=True).requests
    assert r["arrival_s"].tolist() == [0.0, 2.0] and r["source_model"].isna().all()


canonical_frames = st.integers(1, 40).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "arrival_s": st.lists(st.integers(0, 10**9), min_size=n, max_size=n),
            "model": st.lists(
                st.sampled_from(["math", "code", "tool", None]), min_size=n, max_size=n
            ),
            "prompt_tokens": st.lists(st.integers(1, 200_000), min_size=n, max_size=n),
            "output_tokens": st.lists(st.integers(1, 10_000), min_size=n, max_size=n),
        }
    )
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=canonical_frames)
def test_property_canonical_round_trip(tmp_path, data):
    df = pd.DataFrame(data)
    df["arrival_s"] = df["arrival_s"] / 1e6  # microsecond resolution, as written
    p = write_canonical(df, tmp_path / "prop.csv")
    t = read_trace(p, sort_arrivals=True)
    _check_frame(t.requests)
    order = np.argsort(df["arrival_s"].to_numpy(), kind="stable")
    expect = df.iloc[order].reset_index(drop=True)
    got = t.requests
    assert got["row"].tolist() == (order + 1).tolist()
    np.testing.assert_allclose(
        got["arrival_s"], expect["arrival_s"] - expect["arrival_s"].iloc[0], rtol=0, atol=1e-6
    )
    assert got["prompt_tokens"].tolist() == expect["prompt_tokens"].tolist()
    assert got["output_tokens"].tolist() == expect["output_tokens"].tolist()
    assert _names(got["source_model"]) == _names(expect["model"])


def test_ties_keep_file_order(tmp_path):
    p = _write(
        tmp_path, "t.csv", "arrival_s,prompt_tokens,output_tokens\n5,1,1\n2,2,2\n2,3,3\n5,4,4\n"
    )
    t = read_trace(p, sort_arrivals=True)
    assert t.requests["prompt_tokens"].tolist() == [2, 3, 1, 4] and t.num_reordered == 2


def test_blank_lines_are_not_rows_but_keep_row_numbers(tmp_path):
    p = _write(tmp_path, "b.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n\n1,2,2\n\n")
    t = read_trace(p)
    assert t.num_rows == 2 and t.requests["row"].tolist() == [1, 3]
    q = _write(tmp_path, "bad.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n\n1,x,2\n")
    with pytest.raises(TraceError, match=r"row 3, column 'prompt_tokens'"):
        read_trace(q)


# --- options ----------------------------------------------------------------------------------


@pytest.fixture
def ten(tmp_path) -> Path:
    body = "".join(f"{100 + 10 * i},{i + 1},{i + 1}\n" for i in range(10))
    return _write(tmp_path, "ten.csv", "arrival_s,prompt_tokens,output_tokens\n" + body)


def test_window_max_requests_rate_scale(ten):
    t = read_trace(ten, window=(20, 60)).requests  # arrivals 0,10,..,90 from the first
    assert t["prompt_tokens"].tolist() == [3, 4, 5, 6] and t["arrival_s"].tolist() == [
        0,
        10,
        20,
        30,
    ]
    t = read_trace(ten, window=(20, 60), max_requests=2, rate_scale=2.0).requests
    assert t["prompt_tokens"].tolist() == [3, 4] and t["arrival_s"].tolist() == [0.0, 5.0]
    t = read_trace(ten, rate_scale=0.5).requests
    assert t["arrival_s"].iloc[-1] == 180.0
    assert len(read_trace(ten, max_requests=100).requests) == 10


@pytest.mark.parametrize(
    "kw",
    [
        {"rate_scale": 0},
        {"rate_scale": -1.0},
        {"window": (5, 5)},
        {"window": (-1, 5)},
        {"max_requests": 0},
        {"fmt": "parquet"},
    ],
)
def test_bad_options(ten, kw):
    with pytest.raises(ConfigError):
        read_trace(ten, **kw)


def test_window_outside_trace(ten):
    with pytest.raises(TraceError, match="no requests in the window"):
        read_trace(ten, window=(1000, 2000))


# --- bad input --------------------------------------------------------------------------------

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
CAN = "arrival_s,model,prompt_tokens,output_tokens\n"
BG = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"

BAD = {
    # name: (file name, content, regex the message must match)
    "empty": ("e.csv", "", r"e\.csv: the file is empty"),
    "blank_only": ("e.csv", "\n\n", r"e\.csv: the file is empty"),
    "header_only": ("h.csv", AZ, r"h\.csv: the file has a header but no data rows"),
    "unknown_format": (
        "u.csv",
        "time,in,out\n1,2,3\n",
        r"u\.csv: unknown trace format \(header columns: 'time', 'in', 'out'\).*burstgpt"
        r".*azure.*mooncake.*canonical.*--format",
    ),
    "missing_column": (
        "m.csv",
        "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03.97,5\n",
        r"m\.csv: column 'GeneratedTokens': missing column 'GeneratedTokens' for the "
        r"Azure LLM inference CSV format",
    ),
    "non_numeric": (
        "n.csv",
        AZ + "2023-11-16 18:17:03.9799600,5,1\n2023-11-16 18:17:04,abc,1\n"
        "2023-11-16 18:17:05,x,1\n",
        r"n\.csv: row 2, column 'ContextTokens': 'abc' is not a number \(2 bad rows",
    ),
    "empty_value": (
        "n.csv",
        CAN + "0,math,,1\n",
        r"n\.csv: row 1, column 'prompt_tokens': an empty or NaN value is not a number",
    ),
    "non_integer": (
        "i.csv",
        CAN + "0,math,5,1\n1,code,5,2.5\n",
        r"i\.csv: row 2, column 'output_tokens': '2.5' is not a whole number \(1 bad row\)",
    ),
    "zero_prompt": (
        "z.csv",
        CAN + "0,math,5,1\n1,code,0,2\n2,code,-3,2\n",
        r"z\.csv: row 2, column 'prompt_tokens': '0' is not a token count >= 1 \(2 bad rows",
    ),
    "negative_output": (
        "o.csv",
        CAN + "0,math,5,-1\n",
        r"o\.csv: row 1, column 'output_tokens': '-1' is not a token count >= 0",
    ),
    "burstgpt_zero_request": (
        "b.csv",
        BG + "5,ChatGPT,0,10,10,API log\n",
        r"b\.csv: row 1, column 'Request tokens': '0' is not a token count >= 1",
    ),
    "bad_datetime": (
        "d.csv",
        AZ + "2023-11-16 18:17:03.9799600,5,1\n2023-13-45 99:00:00,5,1\n",
        r"d\.csv: row 2, column 'TIMESTAMP': '2023-13-45 99:00:00' is not a timestamp",
    ),
    "bad_number_time": (
        "t.csv",
        CAN + "0,math,5,1\nsoon,math,5,1\n",
        r"t\.csv: row 2, column 'arrival_s': 'soon' is not a timestamp",
    ),
    "all_failed": (
        "f.csv",
        BG + "5,ChatGPT,0,0,0,API log\n",
        r"f\.csv: all 1 rows are failed requests.*--keep-failed",
    ),
    "ragged_csv": ("r.csv", CAN + "0,math,5,1\n1,math,5,1,9,9\n", r"r\.csv: not a well-formed CSV"),
    "bad_json": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
        '{"timestamp": 1, "input_length": 5,\n',
        r"j\.jsonl: row 2: malformed JSON",
    ),
    "json_not_object": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n[1]\n',
        r"j\.jsonl: row 2: expected a JSON object",
    ),
    "json_missing_key": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5}\n',
        r"j\.jsonl: row 1, column 'output_length': missing key 'output_length'",
    ),
    "json_bad_value": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
        '{"timestamp": 0, "input_length": "many", "output_length": 1}\n',
        r"j\.jsonl: row 2, column 'input_length': 'many' is not a number",
    ),
    # --- found by trying bad inputs as a user would (issue 9, item 8) ---
    "tz_mixed_with_naive": (
        "z.csv",
        AZ + "2023-11-16 18:15:46+00:00,5,1\n2023-11-16 18:15:47,5,1\n",
        r"z\.csv: row 2, column 'TIMESTAMP': '2023-11-16 18:15:47' has no UTC offset but row 1 "
        r"\('2023-11-16 18:15:46\+00:00'\) differs; give every timestamp an offset",
    ),
    "tz_bad_offset": (
        "z.csv",
        AZ + "2023-11-16 18:15:46+25:00,5,1\n",
        r"z\.csv: row 1, column 'TIMESTAMP': '2023-11-16 18:15:46\+25:00' is not a timestamp",
    ),
    "datetime_out_of_range": (
        "y.csv",
        AZ + "2023-11-16 18:15:46,5,1\n3000-01-01 00:00:00,5,1\n",
        r"y\.csv: row 2, column 'TIMESTAMP': '3000-01-01 00:00:00' is not a timestamp"
        r".*1678 to 2261",
    ),
    "epoch_number_in_datetime_column": (
        "y.csv",
        AZ + "1700000000,5,1\n",
        r"y\.csv: row 1, column 'TIMESTAMP': '1700000000' is not a timestamp like",
    ),
    "out_of_order_2020_row_in_2023": (
        "o.csv",
        AZ + "2023-11-16 18:15:46,5,1\n2023-11-16 18:15:50,5,1\n2020-11-16 18:15:46,5,1\n",
        r"o\.csv: row 3, column 'TIMESTAMP': '2020-11-16 18:15:46' is 94,608,004 s \(1,095\.0 "
        r"days\) earlier than row 2 \('2023-11-16 18:15:50'\).*sort the file by 'TIMESTAMP'.*"
        r"--sort-arrivals",
    ),
    "out_of_order_burstgpt": (
        "o.csv",
        BG + "100,ChatGPT,10,3,13,API log\n98,ChatGPT,10,3,13,API log\n",
        r"o\.csv: row 2, column 'Timestamp': '98' is 2 s earlier than row 1 \('100'\)",
    ),
    "nan_token": ("n.csv", CAN + "0,,nan,1\n", r"row 1, column 'prompt_tokens': an empty or NaN"),
    "inf_token": (
        "n.csv",
        CAN + "0,,inf,1\n",
        r"row 1, column 'prompt_tokens': 'inf' is not a number",
    ),
    "bool_token": ("n.csv", CAN + "0,,True,1\n", r"row 1, column 'prompt_tokens': 'True' is not a"),
    "thousands_separator": (
        "n.csv",
        CAN + '0,,"1,000",1\n',
        r"row 1, column 'prompt_tokens': '1,000' is not a number",
    ),
    "huge_token": (
        "h.csv",
        CAN + "0,,5,1\n1,,99999999999999999999999,1\n",
        r"h\.csv: row 2, column 'prompt_tokens': '99999999999999999999999' is not a token count "
        r"<= 10,000,000",
    ),
    "huge_int64_token": (
        "h.csv",
        CAN + "0,,5,9223372036854775807\n",
        r"row 1, column 'output_tokens': '9223372036854775807' is not a token count <= 10,000,000",
    ),
    "nan_time": ("t.csv", CAN + "nan,,5,1\n", r"row 1, column 'arrival_s': an empty or NaN value"),
    "inf_time": ("t.csv", CAN + "0,,5,1\ninf,,5,1\n", r"row 2, column 'arrival_s': 'inf' is not a"),
    "nanoseconds_in_seconds_column": (
        "t.csv",
        CAN + "1700000000000000000,,5,1\n",
        r"row 1, column 'arrival_s': '1700000000000000000' is not a plausible time.*in seconds",
    ),
    "duplicate_column": (
        "d.csv",
        "arrival_s,prompt_tokens,output_tokens,prompt_tokens\n0,1,1,2\n",
        r"d\.csv: column 'prompt_tokens': column 'prompt_tokens' appears twice in the header",
    ),
    "duplicate_column_after_strip": (
        "d.csv",
        "arrival_s, output_tokens,prompt_tokens,output_tokens \n0,1,1,2\n",
        r"column 'output_tokens' appears twice",
    ),
    "header_repeated_inside": (
        "d.csv",
        CAN + "0,,5,1\n" + CAN + "1,,5,1\n",
        r"d\.csv: row 2, column 'arrival_s': 'arrival_s' is not a timestamp",
    ),
    "semicolon_separated": (
        "s.csv",
        "arrival_s;model;prompt_tokens;output_tokens\n0;;5;1\n",
        r"s\.csv: the header is separated by semicolons, not commas",
    ),
    "short_row": ("s.csv", CAN + "0,,5\n", r"row 1, column 'output_tokens': an empty or NaN value"),
    "unclosed_quote": ("q.csv", CAN + '0,"abc,5,1\n', r"q\.csv: not a well-formed CSV"),
    "latin1_text": (
        "l.csv",
        (CAN + "0,math,5,1\n1,caf\xe9,5,1\n").encode("latin1"),
        r"l\.csv: row 2: not UTF-8 text \(byte 0xe9 at column 6 of line 3\); save the file as "
        r"UTF-8",
    ),
    "utf16_text": ("u.csv", (CAN + "0,,5,1\n").encode("utf-16"), r"u\.csv: is UTF-16 text"),
    "binary_nul": ("b.csv", bytes(range(256)) * 4, r"b\.csv: is a binary file \(NUL bytes"),
    "binary_no_nul": ("b.csv", bytes(range(1, 256)) * 4, r"b\.csv: the first line holds"),
    "gzip": ("g.csv.gz", b"\x1f\x8b\x08\x00" + b"x" * 40, r"g\.csv\.gz: is a gzip-compressed"),
    "whitespace_only": ("w.csv", "  \n\t\n", r"w\.csv: the file is empty"),
    "commas_only_rows": ("c.csv", CAN + ",,,\n", r"c\.csv: the file has a header but no data rows"),
    "json_null_line": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\nnull\n',
        r"j\.jsonl: row 2: expected a JSON object, got NoneType",
    ),
    "json_string_line": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n"hello"\n',
        r"j\.jsonl: row 2: expected a JSON object, got str",
    ),
    "json_array_file": (
        "j.jsonl",
        '[{"timestamp": 0, "input_length": 5, "output_length": 1}]\n',
        r"j\.jsonl: unknown trace format",
    ),
    "json_trailing_garbage": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1} xyz\n',
        r"j\.jsonl: row 1: malformed JSON \(Extra data",
    ),
    "json_duplicate_key": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "input_length": 6, "output_length": 1}\n',
        r"j\.jsonl: row 1, column 'input_length': key 'input_length' appears twice",
    ),
    "json_nan_value": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": NaN, "output_length": 1}\n',
        r"row 1, column 'input_length': an empty or NaN value is not a number",
    ),
    "json_infinite_time": (
        "j.jsonl",
        '{"timestamp": Infinity, "input_length": 5, "output_length": 1}\n',
        r"row 1, column 'timestamp': 'inf' is not a timestamp",
    ),
    "json_bool_value": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": true, "output_length": 1}\n',
        r"row 1, column 'input_length': 'True' is not a number",
    ),
    "json_list_value": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": [5], "output_length": 1}\n',
        r"row 1, column 'input_length': '\[5\]' is not a number",
    ),
    "json_huge_value": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 1000000000000000000000000000000, "output_length": 1}\n',
        r"row 1, column 'input_length': '1000000000000000000000000000000' is not a token count "
        r"<= 10,000,000",
    ),
    "json_deeply_nested": (
        "j.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "x": '
        + "[" * 100_000
        + "]" * 100_000
        + "}\n",
        r"j\.jsonl: row 1: JSON nested too deeply",
    ),
    "json_out_of_order": (
        "j.jsonl",
        '{"timestamp": 5000, "input_length": 5, "output_length": 1}\n'
        '{"timestamp": 1000, "input_length": 5, "output_length": 1}\n',
        r"j\.jsonl: row 2, column 'timestamp': '1000' is 4 s earlier than row 1 \('5000'\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_one_line_trace_error(tmp_path, case):
    name, text, pattern = BAD[case]
    p = _write(tmp_path, name, text)
    with pytest.raises(TraceError) as e:
        read_trace(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert re.search(pattern, msg), msg


def test_bad_input_table_is_large():
    assert len(BAD) >= 45  # the table is the spec of item 8's trace inputs: keep it growing


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.csv: file not found"):
        read_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match=r"is a directory; pass a trace file"):
        read_trace(tmp_path)


def test_forced_format_names_the_missing_column():
    path = require_trace("burstgpt_1_head.csv")
    with pytest.raises(TraceError, match=r"missing column 'TIMESTAMP' for the Azure"):
        read_trace(path, fmt="azure")


# --- model labelling --------------------------------------------------------------------------


def _requests(n: int, source=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arrival_s": np.arange(n, dtype=float),
            "prompt_tokens": 1,
            "output_tokens": 1,
            "source_model": pd.array([pd.NA] * n if source is None else source, dtype="string"),
        }
    )


def test_zipf_shares():
    np.testing.assert_allclose(zipf_shares(3, 0), [1 / 3] * 3)
    w = zipf_shares(3, 1.0)
    np.testing.assert_allclose(w, np.array([1, 1 / 2, 1 / 3]) / (11 / 6))
    with pytest.raises(ConfigError):
        zipf_shares(3, -1)


def test_label_same_seed_same_labels_and_default_zipf():
    df = _requests(3000)
    a = label_models(df, SERVED, rng=np.random.default_rng(5))
    b = label_models(df, SERVED, rng=np.random.default_rng(5))
    assert a["model"].tolist() == b["model"].tolist()
    assert "model" not in df.columns  # a copy
    assert list(a["model"].cat.categories) == list(SERVED)
    frac = np.array(list(model_counts(a).values())) / 3000
    np.testing.assert_allclose(frac, zipf_shares(3, 1.0), atol=0.03)


def test_label_shares_respected():
    df = _requests(20_000)
    out = label_models(df, SERVED, shares=[2, 0, 6], zipf_alpha=3.0, rng=np.random.default_rng(1))
    c = model_counts(out)
    assert list(c) == list(SERVED) and c["code"] == 0
    assert c["math"] / 20_000 == pytest.approx(0.25, abs=0.015)
    with pytest.raises(ConfigError):
        label_models(df, SERVED, shares=[1, 1], rng=np.random.default_rng(1))


def test_label_zipf_alpha_zero_is_uniform():
    out = label_models(_requests(30_000), SERVED, zipf_alpha=0.0, rng=np.random.default_rng(2))
    for v in model_counts(out).values():
        assert v / 30_000 == pytest.approx(1 / 3, abs=0.015)


def test_label_by_source_frequency_rank():
    src = ["GPT-4"] * 5 + ["ChatGPT"] * 9
    out = label_models(_requests(14, src), SERVED, rng=np.random.default_rng(0))
    assert model_counts(out) == {"math": 9, "code": 5, "tool": 0}
    with pytest.raises(TraceError, match="--model-map or --zipf"):
        label_models(_requests(3, ["a", "b", "c"]), ["x", "y"], rng=np.random.default_rng(0))
    with pytest.raises(TraceError, match="no source model"):
        label_models(_requests(2, ["a", None]), SERVED, rng=np.random.default_rng(0))


def test_label_keeps_source_names_that_are_served():
    src = ["tool"] * 5 + ["math"] * 2
    out = label_models(_requests(7, src), SERVED, rng=np.random.default_rng(0))
    assert out["model"].tolist() == src
    assert model_counts(out) == {"math": 2, "code": 0, "tool": 5}


def test_label_model_map_and_its_errors():
    df = _requests(3, ["ChatGPT", "GPT-4", "ChatGPT"])
    out = label_models(
        df,
        SERVED,
        model_map={"ChatGPT": "tool", "GPT-4": "math"},
        zipf_alpha=1.0,
        rng=np.random.default_rng(0),
    )
    assert out["model"].tolist() == ["tool", "math", "tool"]
    with pytest.raises(TraceError, match="unmapped: GPT-4"):
        label_models(df, SERVED, model_map={"ChatGPT": "tool"}, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="poetry"):
        label_models(
            df,
            SERVED,
            model_map={"ChatGPT": "poetry", "GPT-4": "math"},
            rng=np.random.default_rng(0),
        )
    with pytest.raises(TraceError, match="1 of 2 requests have no source model"):
        label_models(
            _requests(2, ["ChatGPT", None]),
            SERVED,
            model_map={"ChatGPT": "math"},
            rng=np.random.default_rng(0),
        )
    with pytest.raises(TraceError, match="names no source models"):
        label_models(_requests(2), SERVED, model_map={"a": "math"}, rng=np.random.default_rng(0))


def test_label_real_burstgpt_head():
    t = read_trace(require_trace("burstgpt_1_head.csv"))
    out = label_models(t.requests, SERVED, rng=np.random.default_rng(0))
    assert model_counts(out) == {"math": 36, "code": 15, "tool": 0}


# --- synth ------------------------------------------------------------------------------------


def test_synth_reproducible_and_canonical():
    a = synth_trace(num_requests=500, rng=np.random.default_rng(3))
    b = synth_trace(num_requests=500, rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    assert tuple(a.columns) == CANONICAL_COLUMNS and len(a) == 500
    assert a["arrival_s"].iloc[0] == 0.0 and a["arrival_s"].is_monotonic_increasing
    assert a["prompt_tokens"].between(1, 32768).all() and a["output_tokens"].between(1, 4096).all()
    c = synth_trace(num_requests=500, rng=np.random.default_rng(4))
    assert not a["arrival_s"].equals(c["arrival_s"])


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_synth_rate_and_cv(cv):
    df = synth_trace(num_requests=40_000, rate=8.0, burstiness=cv, rng=np.random.default_rng(11))
    gaps = np.diff(df["arrival_s"].to_numpy())
    assert gaps.mean() == pytest.approx(1 / 8.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_synth_duration_models_and_lengths():
    df = synth_trace(duration_s=600, rate=6.0, rng=np.random.default_rng(0))
    assert df["arrival_s"].iloc[-1] < 600 and len(df) == pytest.approx(3600, rel=0.15)
    frac = np.array(list(model_counts(df).values())) / len(df)
    np.testing.assert_allclose(frac, zipf_shares(3, 1.2), atol=0.04)
    assert df["prompt_tokens"].median() == pytest.approx(1020, rel=0.1)
    assert df["output_tokens"].median() == pytest.approx(129, rel=0.1)
    even = synth_trace(num_requests=5, rate=2.0, burstiness=0, rng=np.random.default_rng(0))
    assert even["arrival_s"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"num_requests": 5, "duration_s": 5.0},
        {"num_requests": 0},
        {"duration_s": -1.0},
        {"num_requests": 5, "rate": 0.0},
        {"num_requests": 5, "burstiness": -1.0},
        {"num_requests": 5, "served": ("a", "a")},
    ],
)
def test_synth_bad_settings(kw):
    with pytest.raises(ConfigError):
        synth_trace(rng=np.random.default_rng(0), **kw)


def test_lognormal_lengths_validation():
    assert LognormalLengths(100, 400).sigma > 0
    with pytest.raises(ConfigError):
        LognormalLengths(400, 100)


def test_synth_written_trace_reads_back(tmp_path):
    df = synth_trace(num_requests=200, rng=np.random.default_rng(9))
    t = read_trace(write_canonical(df, tmp_path / "s.csv"))
    assert len(t.requests) == 200 and sum(t.source_models.values()) == 200
    np.testing.assert_allclose(t.requests["arrival_s"], df["arrival_s"], atol=1e-6, rtol=0)
    assert t.requests["prompt_tokens"].tolist() == df["prompt_tokens"].tolist()


def test_bundled_default_trace_regenerates_exactly(tmp_path):
    """The bundled synth_burstgpt_3models.csv is what its documented command writes
    (sunsim/data/traces/README.md)."""
    bundled = default_trace()
    df = synth_trace(
        duration_s=600,
        rate=6,
        burstiness=2,
        served=SERVED,
        zipf_alpha=1.2,
        rng=np.random.default_rng(20240131),
    )
    again = write_canonical(df, tmp_path / "again.csv")
    assert again.read_bytes() == bundled.read_bytes()
    t = read_trace(bundled)
    assert (t.format, len(t.requests)) == ("canonical", 3674)
    assert t.source_models == {"math": 2153, "code": 925, "tool": 596}


# --- timestamps with UTC offsets, time order ---------------------------------------------------


@pytest.mark.parametrize(
    "stamps",
    [
        ["2023-11-16 18:15:46.6805900+00:00", "2023-11-16 18:15:48.1805900+00:00"],
        ["2023-11-16 18:15:46.6805900Z", "2023-11-16 18:15:48.1805900Z"],
        ["2023-11-16T18:15:46.6805900+0000", "2023-11-16T20:15:48.1805900+02:00"],
        ["2023-11-16 19:15:46.6805900+01:00", "2023-11-16 13:15:48.1805900-05:00"],
    ],
)
def test_utc_offsets_convert_to_utc(tmp_path, stamps):
    p = _write(tmp_path, "tz.csv", AZ + "".join(f"{s},5,1\n" for s in stamps))
    t = read_trace(p)
    assert t.requests["arrival_s"].tolist() == pytest.approx([0.0, 1.5], abs=1e-9)
    assert t.num_reordered == 0


def test_utc_offset_trace_reads_like_naive_one(tmp_path):
    path = require_trace("azure_llm_2023_code.csv")
    df = pd.read_csv(path)
    df["TIMESTAMP"] = df["TIMESTAMP"] + "+00:00"
    tz = tmp_path / "code_tz.csv"
    df.to_csv(tz, index=False)
    a, b = read_trace(path).requests, read_trace(tz).requests
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_jitter_is_resorted_and_counted(tmp_path):
    p = _write(tmp_path, "j.csv", CAN + "0,,1,1\n2,,2,1\n1.5,,3,1\n3,,4,1\n2.9,,5,1\n")
    t = read_trace(p)
    assert t.requests["prompt_tokens"].tolist() == [1, 3, 2, 5, 4]
    assert t.num_reordered == 2 and trace_info(t)["num_reordered"] == 2


def test_out_of_order_beyond_tolerance_needs_sort_arrivals(tmp_path):
    p = _write(tmp_path, "o.csv", CAN + "10,,1,1\n0,,2,1\n20,,3,1\n")
    with pytest.raises(TraceError, match=r"row 2, column 'arrival_s': '0' is 10 s earlier"):
        read_trace(p)
    t = read_trace(p, sort_arrivals=True)
    assert t.requests["prompt_tokens"].tolist() == [2, 1, 3] and t.num_reordered == 1


def test_real_traces_are_in_order():
    for name in ("azure_llm_2023_conv.csv", "azure_llm_2023_code.csv", "burstgpt_1_head.csv"):
        assert read_trace(require_trace(name)).num_reordered == 0


def test_blank_lines_before_header_and_between_json_lines(tmp_path):
    p = _write(tmp_path, "b.csv", "\n\n" + CAN + "0,,5,1\n1,,6,1\n")
    t = read_trace(p)
    assert t.requests["prompt_tokens"].tolist() == [5, 6] and t.requests["row"].tolist() == [1, 2]
    line = '{{"timestamp": {}, "input_length": {}, "output_length": 1}}\n'
    q = _write(tmp_path, "b.jsonl", "\n" + line.format(0, 7) + "\n\n" + line.format(1000, 8))
    t = read_trace(q)
    assert t.requests["prompt_tokens"].tolist() == [7, 8] and t.requests["row"].tolist() == [2, 5]


def test_directory_and_device_are_refused(tmp_path):
    with pytest.raises(TraceError, match=r"is a directory; pass a trace file"):
        read_trace(tmp_path)
    if Path("/dev/null").exists():
        with pytest.raises(TraceError, match=r"/dev/null: is not a regular file"):
            read_trace("/dev/null")


@pytest.mark.parametrize(
    "kw",
    [{"num_requests": 10**12}, {"duration_s": 1e12, "rate": 100.0}, {"num_requests": True}],
)
def test_synth_refuses_huge_or_odd_counts(kw):
    with pytest.raises(ConfigError):
        synth_trace(**kw, rng=np.random.default_rng(0))
