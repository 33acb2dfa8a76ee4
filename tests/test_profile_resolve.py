"""Latency resolution (sunsim.latency.resolve): roofline, a given profile, a bundled one."""

from __future__ import annotations

import pytest
from test_profile_format import meta, tables

from sunsim.data import profiles_root
from sunsim.errors import ProfileError
from sunsim.latency.calibrated import CalibratedLatency
from sunsim.latency.profile_format import write_profile_dir
from sunsim.latency.profiled import ProfiledLatency
from sunsim.latency.resolve import gpu_key, has_role, resolve_latency
from sunsim.latency.roofline import RooflineLatency

BUNDLED = str(profiles_root() / "cpu-intel-xeon-1t")


def test_roofline_when_asked():
    lat, note = resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "roofline")
    assert isinstance(lat, RooflineLatency)
    assert note == f"decode: {lat.description} (asked for)"


def test_auto_falls_back_to_roofline_and_says_so(tmp_path):
    lat, note = resolve_latency("tiny-llama", "h100", "w4a16", "prefill", profiles=tmp_path)
    assert isinstance(lat, CalibratedLatency)  # the calibrated roofline (test_calibrated.py)
    assert (
        note == f"prefill: no measured profile for h100 tiny-llama w4a16; using {lat.description}"
    )


def test_auto_finds_a_profile_for_the_gpu(tmp_path):
    dec, pre = tables()
    d = write_profile_dir(
        tmp_path, pre, dec, meta(gpu_key="h200", device_kind="cuda", device_slug="h200-sxm")
    )
    lat, note = resolve_latency("tiny-llama", "H200", "bf16", "prefill", profiles=tmp_path)
    assert isinstance(lat, ProfiledLatency) and lat.path == d
    assert note == f"prefill: {lat.description} from {d}"
    lat, _ = resolve_latency("tiny-llama", "h100", "bf16", "prefill", profiles=tmp_path)
    assert isinstance(lat, CalibratedLatency)  # measured on another GPU


def test_given_profile_and_its_role(tmp_path):
    dec, pre = tables()
    d = write_profile_dir(tmp_path, pre, dec, meta())
    lat, note = resolve_latency("tiny-llama", "h100", "bf16", "decode", "profile", d.parent.parent)
    assert isinstance(lat, ProfiledLatency) and note.endswith(f"from {d}")
    q = write_profile_dir(tmp_path / "q", None, dec, meta(precision="w8a16", modules=["decode"]))
    lat, _ = resolve_latency("tiny-llama", "h100", "w8a16", "decode", "profile", q)
    assert not has_role(lat, "prefill") and has_role(lat, "decode")
    with pytest.raises(ProfileError, match="no prefill measurements"):
        resolve_latency("tiny-llama", "h100", "w8a16", "prefill", "profile", q)
    with pytest.raises(ProfileError, match="'tiny-llama'"):
        resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "auto", d)


def test_gpu_key_aliases():
    assert gpu_key("H100") == "h100"
