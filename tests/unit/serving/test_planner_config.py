"""``config/serving_nodes.yaml``: the shipped file loads; bad entries name the file and field."""

from pathlib import Path

import pytest

from data_plane.errors import InputFileError
from reasoning_plane.serving.planner_config import load_planner_config
from resources.database import project_root

GOOD = """
nodes:
  - name: spark
    cluster: eu-fra-a10
    memory: {total_gb: 128, reserve_gb: 16, source: /proc/meminfo}
    runtimes: [llama.cpp, vllm]
    adapters:
      vllm: {class: "serving.runtimes.vllm:VllmAdapter", base_url: "http://127.0.0.1:8000"}
models:
  - name: qwen
    runtime: vllm
    source: Qwen/Qwen2.5-7B-Instruct
    shape: {weights_gb: 15.2, layers: 28, kv_heads: 4, head_dim: 128}
    context_tokens: 32768
    parallel_slots: 8
    cold_load_s: 30
    wake_s: 2
    sleep_gb: 1.5
    datasets: [customer_orders_eu]
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "serving_nodes.yaml"
    path.write_text(text)
    return load_planner_config(path)


def test_the_shipped_file_loads() -> None:
    config = load_planner_config(project_root() / "config" / "serving_nodes.yaml")
    assert config.nodes and config.models
    assert config.models[0].footprint().total_gb > config.models[0].shape.weights_gb


def test_a_file_builds_the_planner_inputs(tmp_path: Path) -> None:
    config = _load(tmp_path, GOOD)
    (node,) = config.nodes
    (model,) = config.models
    assert node.memory.budget_gb == 112 and node.runtimes == {"llama.cpp", "vllm"}
    assert model.can_sleep and model.asleep_gb == 1.5
    assert model.datasets == ("customer_orders_eu",)
    # 2 x 28 layers x 4 heads x 128 x 2 bytes x 32768 tokens x 8 slots = 14 GiB of KV cache
    assert model.footprint().kv_cache_gb == pytest.approx(14.0)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("total_gb: 128", "total_gb: -1"), "total_gb"),
        (("runtimes: [llama.cpp, vllm]", "runtimes: [tgi]"), "runtimes"),
        (("    cold_load_s: 30\n", ""), "cold_load_s"),
        (("    runtime: vllm\n", "    runtime: llama.cpp\n"), "wake_s"),
        (("source: /proc/meminfo", "source: guess"), "source"),
        (("    datasets:", "    colour: red\n    datasets:"), "colour"),
        (("      vllm: {class", "      ollama: {class"), "'ollama' is not a runtime here"),
    ],
)
def test_bad_entries_name_file_and_field(tmp_path: Path, change, problem) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(InputFileError, match=problem) as err:
        _load(tmp_path, GOOD.replace(old, new))
    assert str(err.value).startswith(str(tmp_path / "serving_nodes.yaml"))


def test_a_node_named_twice_is_refused(tmp_path: Path) -> None:
    node = GOOD.split("models:")[0].split("nodes:\n")[1]
    text = GOOD.replace("nodes:\n", "nodes:\n" + node)
    with pytest.raises(InputFileError, match="named twice"):
        _load(tmp_path, text)


def test_the_shipped_file_prices_hysteresis_in_reload_times() -> None:
    config = load_planner_config(project_root() / "config" / "serving_nodes.yaml")
    assert config.settings.reload_multiple == 10
    gemma = next(m for m in config.models if m.name == "gemma-3-270m")
    assert config.settings.hold_s(config.settings.min_residency_s, gemma.cold_load_s) == 13.0


def test_a_bad_reload_multiple_names_file_and_field(tmp_path: Path) -> None:
    text = (project_root() / "config" / "serving_nodes.yaml").read_text()
    path = tmp_path / "nodes.yaml"
    path.write_text(text.replace("reload_multiple: 10 ", "reload_multiple: 0 "))
    with pytest.raises(InputFileError, match="reload_multiple"):
        load_planner_config(path)
