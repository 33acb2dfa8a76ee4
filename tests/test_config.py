"""The scenario model and its TOML reader/writer: strict types, bounds, one-line errors
naming the file and key, old key aliases, absolute paths, and a layout derived from the
fields."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from sunsim.config import (
    DEFAULT_MODES,
    MODES,
    SCENARIO_TOML,
    Scenario,
    ScenarioFieldError,
    load_scenario,
    scenario_fields,
    scenario_from_toml_dict,
    scenario_to_toml_dict,
    toml_layout,
    write_toml,
)
from sunsim.errors import ConfigError


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"max_num_seqs": "256"}, "max_num_seqs", "expected an integer, got '256'"),
        ({"max_num_seqs": 0}, "max_num_seqs", "must be >= 1, got 0"),
        ({"max_num_seqs": 10**7}, "max_num_seqs", "must be <= 65536"),
        ({"block_size": 16.5}, "block_size", "expected an integer, got 16.5"),
        ({"block_size": True}, "block_size", "expected an integer, got true"),
        ({"keep_failed": "no"}, "keep_failed", "expected true or false, got 'no'"),
        ({"keep_failed": 1}, "keep_failed", "expected true or false, got 1"),
        ({"seed": -1}, "seed", "must be >= 0, got -1"),
        ({"seed": 1.5}, "seed", "expected an integer, got 1.5"),
        ({"link_gbps": -5}, "link_gbps", "must be > 0, got -5"),
        ({"link_gbps": 0}, "link_gbps", "must be > 0, got 0"),
        ({"link_gbps": float("inf")}, "link_gbps", "finite"),
        ({"link_latency_us": -1.0}, "link_latency_us", "must be >= 0"),
        ({"decode_workers": (10**9,)}, "decode_workers", "at most 4096 workers per pool"),
        ({"prefill_workers": (1, 0, 1)}, "prefill_workers", "model 'code' in design 'partitioned'"),
        ({"decode_workers": (True,)}, "decode_workers", "expected an integer"),
        ({"gpu": "tpu"}, "gpu", "unknown GPU 'tpu'; choose from h100"),
        ({"base_model": "gpt-9"}, "base_model", "unknown model 'gpt-9'"),
        ({"modes": ("shared",)}, "modes", "unknown mode 'shared'"),
        ({"modes": ()}, "modes", "at least 1"),
        ({"decode_router": "fastest"}, "decode_router", "unknown decode router 'fastest'"),
        ({"qsun_precision": "int3"}, "qsun_precision", "w4a16, w8a16"),
        ({"latency": "guess"}, "latency", "auto, profile, roofline"),
        ({"trace_format": "xls"}, "trace_format", "unknown trace format 'xls'"),
        ({"slo_attainment": 1.5}, "slo_attainment", "must be <= 1"),
        ({"gpu_memory_utilization": 0}, "gpu_memory_utilization", "must be > 0"),
        ({"rate_scale": "2"}, "rate_scale", "expected a number, got '2'"),
        ({"served_models": ("a", 3, "c")}, "served_models", "expected a string"),
    ],
)
def test_bad_field_is_one_line_naming_it(changes, field, words):
    with pytest.raises(ScenarioFieldError) as ei:
        Scenario(**changes)
    assert ei.value.field == field
    msg = str(ei.value)
    assert msg.startswith(f"{field}: ") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"decode_workers": (1, 2)}, "got 2"),
        ({"shares": (0.5, 0.5)}, "2 shares for 3 served models"),
        ({"shares": (0.0, 0.0, 0.0)}, "positive sum"),
        ({"served_models": ("a", "a")}, "must differ"),
        ({"latency": "profile"}, "needs a profile path"),
        ({"window_s": (5.0, 1.0)}, "START < END"),
        ({"modes": ("partitioned",), "decode_workers": (2,)}, "2 decode workers"),
        ({"bogus": 1}, "unknown scenario field 'bogus'"),
    ],
)
def test_impossible_combinations_are_config_errors(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        Scenario(**changes)


def test_replace_validates_and_keeps_dataclass_tools():
    s = Scenario()
    assert dataclasses.replace(s, rate_scale=2).rate_scale == 2.0
    assert s.replace(max_num_seqs=64).max_num_seqs == 64
    with pytest.raises(ScenarioFieldError, match="max_num_seqs"):
        dataclasses.replace(s, max_num_seqs="64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s and hash(s) == hash(Scenario())
    assert dataclasses.asdict(s)["modes"] == DEFAULT_MODES
    # NumPy scalars (the planner's) are plain numbers
    t = s.replace(decode_workers=(np.int64(4),), zipf=np.float64(1.2))
    assert t.decode_workers == (4,) and type(t.decode_workers[0]) is int and t.zipf == 1.2


def test_choices_normalise_case_and_aliases():
    s = Scenario(gpu="H100-SXM", base_model="Qwen3-8B", modes="all")
    assert (s.gpu, s.base_model, s.modes) == ("h100", "qwen3-8b", MODES)


def test_layout_is_derived_from_the_fields_once():
    fields = scenario_fields()
    seen = [m.name for keys in toml_layout().values() for m in keys.values()]
    assert sorted(seen) == sorted(fields)  # every field in exactly one [section] key
    for meta in fields.values():
        assert meta.help and meta.section in toml_layout()
        assert meta.option.startswith("--") or meta.option == "TRACE"
    assert SCENARIO_TOML["cluster"]["block_size"] == "block_size"
    assert SCENARIO_TOML["models"]["served"] == "served_models"
    assert fields["max_num_seqs"].unit == "sequences" and fields["link_gbps"].unit == "Gb/s"


def test_toml_round_trip(tmp_path: Path):
    s = Scenario(
        trace=str(tmp_path / "t.csv"),
        window_s=(1.0, 9.0),
        shares=(0.5, 0.3, 0.2),
        model_map=(("ChatGPT", "math"),),
        decode_workers=(2, 2, 2),
        seed=7,
    )
    d = scenario_to_toml_dict(s)
    assert list(d) == ["trace", "workload", "models", "cluster", "slo", "cost", "latency", "run"]
    assert d["models"]["map"] == {"ChatGPT": "math"} and d["cluster"]["decode_workers"] == [2] * 3
    p = write_toml(tmp_path / "s.toml", d, header="a scenario")
    assert p.read_text().startswith("# a scenario\n")
    assert load_scenario(p) == s


def test_old_key_aliases_are_read(tmp_path: Path):
    s = scenario_from_toml_dict({"cluster": {"kv_block_tokens": 32, "max_batch_tokens": 4096}})
    assert (s.block_size, s.max_num_batched_tokens) == (32, 4096)
    with pytest.raises(ConfigError, match="set twice"):
        scenario_from_toml_dict({"cluster": {"kv_block_tokens": 32, "block_size": 16}})
    with pytest.raises(ConfigError, match=r"\[cluster\] kv_block_tokens: expected an integer"):
        scenario_from_toml_dict({"cluster": {"kv_block_tokens": 16.5}}, source="x.toml")


def test_relative_paths_resolve_against_the_file(tmp_path: Path, monkeypatch):
    d = tmp_path / "sc"
    d.mkdir()
    (d / "s.toml").write_text('[trace]\npath = "traces/t.csv"\n[latency]\nprofile = "prof"\n')
    monkeypatch.chdir(tmp_path)
    s = load_scenario(Path("sc/s.toml"))
    assert s.trace == str(d / "traces" / "t.csv") and s.profile == str(d / "prof")
    # a path given in Python is made absolute against the working directory
    assert Scenario(trace="x.csv").trace == str(tmp_path / "x.csv")
    assert Path(scenario_to_toml_dict(s)["trace"]["path"]).is_absolute()


@pytest.mark.parametrize(
    "text, words",
    [
        ('[cluster]\nmax_num_seqs = "256"\n', "max_num_seqs: expected an integer, got '256'"),
        ("[cluster]\nblock_size = 16.5\n", "[cluster] block_size: expected an integer, got 16.5"),
        ('[trace]\nkeep_failed = "no"\n', "[trace] keep_failed: expected true or false"),
        ("[cluster]\nlink_gbps = -5\n", "[cluster] link_gbps: must be > 0, got -5"),
        ("[cluster]\nlink_latency_us = -1\n", "[cluster] link_latency_us: must be >= 0"),
        ("[run]\nseed = -3\n", "[run] seed: must be >= 0, got -3"),
        ("[run]\nseed = 2.5\n", "[run] seed: expected an integer, got 2.5"),
        ("[cluster]\ndecode_workers = 100000\n", "decode_workers: item 1: must be <= 4096"),
        ("[cluster]\nprefill_workers = [true]\n", "prefill_workers: item 1: expected an int"),
        ("[models]\nbase = \"gpt-9\"\n", "[models] base: unknown model 'gpt-9'"),
        ("[cluster]\nbogus = 1\n", "unknown key 'bogus' in [cluster]"),
        ("[clusters]\ngpu = \"h100\"\n", "unknown section [clusters]"),
        ("cluster = 3\n", "'cluster' must be a table"),
        ("[cluster\ngpu = 'h100'\n", "not valid TOML"),
        ("[slo]\nttft_s = 0\n", "[slo] ttft_s: must be > 0, got 0"),
    ],
)  # fmt: skip
def test_bad_scenario_file_is_one_line_naming_file_and_key(tmp_path: Path, text, words):
    p = tmp_path / "scenario.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_scenario(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: ") and words in msg and "\n" not in msg, msg


def test_missing_scenario_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_reference_table_lists_every_field_once():
    from sunsim.config.reference import scenario_markdown_table

    table = scenario_markdown_table()
    for meta in scenario_fields().values():
        assert sum(f"`[{meta.section}] {meta.key}`" in ln for ln in table.splitlines()) == 1
    assert "| `--decode-workers` | `[cluster] decode_workers` |" in table
    assert "| workers | 3 |" in table


def test_readme_options_are_real_replay_options():
    """Every ``--option`` the README's option table names is an option of ``sunsim replay``."""
    import re

    from typer.main import get_command

    from sunsim.cli import app

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("no README.md next to tests/")
    cmd = get_command(app).commands["replay"]  # type: ignore[attr-defined]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    rows = [ln for ln in readme.read_text().splitlines() if ln.startswith("| `--")]
    named = {o for ln in rows for o in re.findall(r"`(--[a-z0-9-]+)", ln.split(" | ")[0])}
    assert named and named <= known, sorted(named - known)
