"""The serving node's memory accountant against published figures and a real /proc/meminfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoning_plane.serving.memory import (
    Footprint,
    ModelShape,
    NodeMemory,
    ServingConfig,
    footprint,
    read_meminfo,
    unified_node_memory,
)

# Llama 3.1 8B: 32 layers, 8 KV heads of 128 (grouped-query attention); its f16 KV cache is the
# often-quoted 128 KiB per token, 1 GiB at 8,192 tokens.
LLAMA_8B = ModelShape("llama-3.1-8b", weights_gb=16.1, layers=32, kv_heads=8, head_dim=128)
# Gemma 3 270M (the GGUF the tests serve): 18 layers, 1 KV head of 256.
GEMMA_270M = ModelShape("gemma-3-270m", weights_gb=0.253, layers=18, kv_heads=1, head_dim=256)


def test_the_kv_cache_matches_the_published_figure() -> None:
    assert LLAMA_8B.kv_bytes_per_token() == 128 * 1024
    one = footprint(LLAMA_8B, ServingConfig(context_tokens=8192, parallel_slots=1))
    assert one.kv_cache_gb == pytest.approx(1.0)
    four = footprint(LLAMA_8B, ServingConfig(context_tokens=8192, parallel_slots=4))
    assert four.kv_cache_gb == pytest.approx(4.0)  # every slot holds a full context
    assert four.total_gb == pytest.approx(16.1 + 4.0 + 0.5)
    assert "KV cache 4.00" in four.explain()


def test_a_quantised_cache_takes_less() -> None:
    q8 = ModelShape("q8", 16.1, 32, 8, 128, kv_dtype="q8_0")
    assert q8.kv_bytes_per_token() < LLAMA_8B.kv_bytes_per_token()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"weights_gb": 0}, "weights_gb must be above 0"),
        ({"layers": 0}, "layers must be a whole number"),
        ({"kv_heads": 1.5}, "kv_heads must be a whole number"),
        ({"kv_dtype": "int3"}, "kv_dtype must be one of"),
    ],
)
def test_a_bad_model_shape_names_its_field(kwargs, problem) -> None:
    base = dict(name="m", weights_gb=1.0, layers=2, kv_heads=1, head_dim=64)
    with pytest.raises(ValueError, match=problem):
        ModelShape(**{**base, **kwargs})


def test_the_budget_keeps_the_reserve() -> None:
    node = NodeMemory(total_gb=128.0, reserve_gb=8.0, source="/proc/meminfo")
    big = Footprint(100.0, 10.0, 0.5)
    assert node.fits([big])
    assert not node.fits([big], Footprint(9.0, 0.0, 0.6))  # 120.1 > 120
    assert NodeMemory(4.0, 8.0, "nvml").budget_gb == 0.0


def test_this_machines_meminfo_reads_and_a_garbled_one_is_refused(tmp_path: Path) -> None:
    info = read_meminfo()  # the real file of the machine running the tests
    assert 0 < info["MemAvailable"] <= info["MemTotal"]
    node = unified_node_memory(info, held_by_models_gb=0.0, reserve_gb=2.0)
    assert node.total_gb == pytest.approx(info["MemAvailable"])
    held = unified_node_memory(info, held_by_models_gb=1e6, reserve_gb=2.0)
    assert held.total_gb == info["MemTotal"]  # never more than the machine has
    bad = tmp_path / "meminfo"
    bad.write_text("MemTotal:       1000 kB\nMemAvailable: lots\n")
    with pytest.raises(ValueError, match="line 2"):
        read_meminfo(bad)
    with pytest.raises(ValueError, match="MemAvailable: missing"):
        unified_node_memory({"MemTotal": 1.0}, 0.0, 0.0)
