"""The profile format (sunsim.latency.profile_format): the one writer and reader of a profile
directory, the ProfileMeta schema, and a table of bad profiles (library and `sunsim profile
check`: one-line ProfileError naming the file, row and column; exit 2, no traceback)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.errors import ProfileError
from sunsim.latency.profile_format import (
    DECODE_COLUMNS,
    PREFILL_COLUMNS,
    ProfileMeta,
    read_profile_dir,
    write_profile_dir,
)
from sunsim.latency.profiled import ProfiledLatency
from sunsim.serialize import as_dict
from sunsim.specs import MODELS

DEC_B = (1, 2, 4, 8)
DEC_C = (128, 256, 512)
PRE_B = (1, 2)
PRE_L = (64, 128, 256)


def _t(b: int, tokens: int) -> float:
    """A step time with six significant digits (so it survives the %.6g writer exactly)."""
    return float(f"{0.01 + 2e-4 * b + 3e-8 * tokens:.6g}")


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    dec = pd.DataFrame(
        [
            {
                "batch_size": b,
                "context_tokens": c,
                "total_context_tokens": b * c,
                "time_s_median": _t(b, b * c),
                "time_s_p10": _t(b, b * c) * 0.5,
                "time_s_p90": _t(b, b * c) * 2,
                "repeats": 9,
                "time_s_min": _t(b, b * c) * 0.5,
                "layers_s_median": math.nan,
                "base_s_median": math.nan,
                "preempted": 1,
            }
            for c in DEC_C
            for b in DEC_B
        ]
    )
    pre = pd.DataFrame(
        [
            {
                "batch_size": b,
                "prompt_tokens": l,
                "total_tokens": b * l,
                "time_s_median": _t(b, b * l),
                "time_s_p10": _t(b, b * l) * 0.5,
                "time_s_p90": _t(b, b * l) * 2,
                "repeats": 5,
            }
            for b in PRE_B
            for l in PRE_L
        ]
    )
    return dec, pre


def meta(**over: object) -> dict:
    m = {
        "schema_version": 1,
        "method": "measured",
        "quick": False,
        "model": "tiny-llama",
        "precision": "bf16",
        "model_spec": as_dict(MODELS["tiny-llama"]),
        "modules": ["prefill", "decode"],
        "device_kind": "cpu",
        "device_name": "Test CPU",
        "device_slug": "cpu-test-1t",
        "gpu_key": None,
        "layers_run": 4,
        "layers_total": 4,
        "fit_statistic": "median",
        "copy_bandwidth_bytes_per_s": 1e10,
        "matmul_flops_per_s": 1e12,
        "kernels": {"decode": "an unknown key: kept"},
    }
    m.update(over)
    return m


def good_profile(root: Path) -> Path:
    dec, pre = tables()
    return write_profile_dir(root, pre, dec, meta())


# -- round trip --------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    dec, pre = tables()
    d = write_profile_dir(tmp_path, pre, dec, meta())
    assert d == tmp_path / "cpu-test-1t" / "tiny-llama" / "bf16"
    assert sorted(p.name for p in d.iterdir()) == ["decode.csv", "meta.json", "prefill.csv"]
    m, pre2, dec2 = read_profile_dir(d, model="tiny-llama", precision="bf16")
    assert isinstance(m, ProfileMeta)
    assert m.to_dict() == json.loads(json.dumps(meta()))  # unknown keys kept, nothing added
    assert m.model_extra == {"kernels": {"decode": "an unknown key: kept"}}
    pd.testing.assert_frame_equal(dec2, dec, check_dtype=False)
    pd.testing.assert_frame_equal(pre2, pre, check_dtype=False)
    assert list(dec2.columns[: len(DECODE_COLUMNS)]) == list(DECODE_COLUMNS)
    assert list(pre2.columns) == list(PREFILL_COLUMNS)
    # the second write of the same profile gives the same files
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    write_profile_dir(tmp_path, pre2, dec2, m)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    # the model fitted from the files equals the one fitted from the frames read
    lat = ProfiledLatency.from_dir(d)
    assert lat.profile_meta == m and lat.decode_step_time(3, 900) > 0


def test_decode_only_write_removes_stale_prefill(tmp_path):
    d = good_profile(tmp_path)
    dec, _ = tables()
    write_profile_dir(tmp_path, None, dec, meta(modules=["decode"]))
    assert not (d / "prefill.csv").exists()
    m, pre, _ = read_profile_dir(d)
    assert pre is None and m.modules == ["decode"]


def test_write_refuses_existing_full_profile_unless_forced(tmp_path):
    d = good_profile(tmp_path)
    dec, pre = tables()
    with pytest.raises(ProfileError, match="--force"):
        write_profile_dir(tmp_path, pre, dec, meta(), force=False)
    write_profile_dir(tmp_path, pre, dec, meta(quick=True), force=False)  # quick: replaced
    assert read_profile_dir(d)[0].quick is True


def test_write_validates_before_writing(tmp_path):
    dec, pre = tables()
    with pytest.raises(ProfileError, match=r"decode.csv: row 2, column 'time_s_median'"):
        write_profile_dir(tmp_path, pre, dec.assign(time_s_median=[1.0, -1.0] + [1.0] * 10), meta())
    with pytest.raises(ProfileError, match="key 'layers_run'"):
        write_profile_dir(tmp_path, pre, dec, meta(layers_run=0))
    assert not any(tmp_path.iterdir())


def test_meta_keeps_types_strict():
    with pytest.raises(ProfileError, match="key 'quick'"):
        ProfileMeta.from_dict(meta(quick="no"))
    m = ProfileMeta.from_dict(meta(wall_s=3))  # a JSON integer where a float goes is fine
    assert m.wall_s == 3.0 and m.get("kernels") == {"decode": "an unknown key: kept"}


# -- bad profiles ------------------------------------------------------------------------------


def _meta_edit(**over):
    def f(d: Path) -> None:
        m = json.loads((d / "meta.json").read_text())
        m.update(over)
        (d / "meta.json").write_text(json.dumps(m))

    return f


def _meta_drop(key):
    def f(d: Path) -> None:
        m = json.loads((d / "meta.json").read_text())
        del m[key]
        (d / "meta.json").write_text(json.dumps(m))

    return f


def _write(name: str, text: str):
    def f(d: Path) -> None:
        (d / name).write_text(text)

    return f


def _csv(name: str, edit):
    def f(d: Path) -> None:
        df = pd.read_csv(d / name)
        edit(df).to_csv(d / name, index=False)

    return f


def _set(row: int, col: str, value):
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df[col] = df[col].astype(object)
        df.loc[row - 1, col] = value
        return df

    return edit


def _rm(name: str):
    return lambda d: (d / name).unlink()


def _empty_dir(d: Path) -> None:
    for p in d.iterdir():
        p.unlink()


_SPEC_BAD = {**as_dict(MODELS["tiny-llama"]), "hidden_size": 1024}

#: (id, corrupt(d), read_profile_dir kwargs / CLI options, substrings of the one-line error)
BAD = [
    ("meta-not-json", _write("meta.json", "{not json"), {}, ["meta.json", "not valid JSON"]),
    ("meta-empty", _write("meta.json", ""), {}, ["meta.json", "not valid JSON"]),
    ("meta-not-object", _write("meta.json", "[1, 2]"), {}, ["meta.json", "JSON object"]),
    ("meta-missing-key", _meta_drop("layers_run"), {}, ["meta.json", "missing key(s) layers_run"]),
    ("meta-wrong-type", _meta_edit(layers_run="4"), {}, ["meta.json", "key 'layers_run'"]),
    ("meta-layers-range", _meta_edit(layers_run=9), {}, ["meta.json", "layers_run 9 exceeds"]),
    ("meta-precision", _meta_edit(precision="fp3"), {}, ["meta.json", "key 'precision'", "fp3"]),
    ("meta-statistic", _meta_edit(fit_statistic="mode"), {}, ["fit_statistic 'mode'"]),
    ("meta-spec", _meta_edit(model_spec=_SPEC_BAD), {}, ["meta.json", "hidden_size"]),
    ("missing-column", _csv("decode.csv", lambda df: df.drop(columns=["time_s_p90"])), {},
     ["decode.csv", "missing column(s) time_s_p90"]),
    ("extra-column", _csv("decode.csv", lambda df: df.assign(foo=1)), {},
     ["decode.csv", "unknown column(s) foo"]),
    ("one-row", _csv("prefill.csv", lambda df: df.head(1)), {}, ["prefill.csv", "1 row(s)"]),
    ("header-only", _csv("decode.csv", lambda df: df.head(0)), {}, ["decode.csv", "0 row(s)"]),
    ("empty-csv", _write("decode.csv", ""), {}, ["decode.csv", "empty file"]),
    ("garbage-csv", lambda d: (d / "decode.csv").write_bytes(b"\xff\xfe\x00\x81bad"), {},
     ["decode.csv"]),
    ("nan-time", _csv("decode.csv", _set(3, "time_s_median", "nan")), {},
     ["decode.csv", "row 3, column 'time_s_median'"]),
    ("empty-time", _csv("prefill.csv", _set(2, "time_s_p10", None)), {},
     ["prefill.csv", "row 2, column 'time_s_p10'"]),
    ("negative-time", _csv("decode.csv", _set(5, "time_s_p90", -0.1)), {},
     ["decode.csv", "row 5, column 'time_s_p90'", "> 0"]),
    ("zero-time", _csv("prefill.csv", _set(4, "time_s_median", 0)), {},
     ["prefill.csv", "row 4, column 'time_s_median'"]),
    ("inf-time", _csv("decode.csv", _set(1, "time_s_median", "inf")), {},
     ["decode.csv", "row 1, column 'time_s_median'"]),
    ("non-numeric", _csv("decode.csv", _set(2, "batch_size", "abc")), {},
     ["decode.csv", "row 2, column 'batch_size'", "non-numeric", "abc"]),
    ("fractional-count", _csv("decode.csv", _set(6, "repeats", 2.5)), {},
     ["decode.csv", "row 6, column 'repeats'", "whole number"]),
    ("bad-total", _csv("decode.csv", _set(4, "total_context_tokens", 7)), {},
     ["decode.csv", "row 4, column 'total_context_tokens'"]),
    ("duplicate-point", _csv("decode.csv", lambda df: pd.concat([df, df.head(1)])), {},
     ["decode.csv", "row 13", "duplicate grid point"]),
    ("missing-fit-column", _meta_edit(fit_statistic="min"), {},
     ["prefill.csv", "missing column(s) time_s_min"]),
    ("prefill-missing", _rm("prefill.csv"), {}, ["prefill.csv", "missing"]),
    ("decode-missing", _rm("decode.csv"), {}, ["decode.csv", "missing"]),
    ("other-model", lambda d: None, {"model": "llama-3.1-8b"},
     ["meta.json", "'tiny-llama'", "llama-3.1-8b"]),
    ("other-precision", lambda d: None, {"precision": "w4a16"},
     ["meta.json", "'bf16'", "w4a16"]),
    ("empty-dir", _empty_dir, {}, ["meta.json", "missing"]),
]  # fmt: skip


@pytest.mark.parametrize(("corrupt", "kw", "want"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_profile_is_one_line_profile_error(tmp_path, corrupt, kw, want):
    d = good_profile(tmp_path)
    corrupt(d)
    with pytest.raises(ProfileError) as e:
        read_profile_dir(d, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(d) in msg, msg  # names the file
    for w in want:
        assert w in msg, msg
    with pytest.raises(ProfileError):  # the latency model reads through the same reader
        ProfiledLatency.from_dir(d, **kw)


@pytest.mark.parametrize(("corrupt", "kw", "want"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_profile_check_exits_2(tmp_path, corrupt, kw, want):
    d = good_profile(tmp_path)
    corrupt(d)
    opts = [x for k, v in kw.items() for x in (f"--{k}", v)]
    r = CliRunner().invoke(app, ["profile", "check", str(d), *opts])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    flat = " ".join(r.output.split())
    assert flat.startswith("error:"), r.output
    if corrupt is _empty_dir:  # the check command looks below the directory too
        want = ["no profile (meta.json) here or below"]
    for w in want:
        assert w in flat, r.output
