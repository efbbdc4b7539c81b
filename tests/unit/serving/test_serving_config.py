"""The serving configuration (config/serving.yaml): what it builds, and its refusals, each naming
the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data_plane.errors import InputFileError
from reasoning_plane.config.serving import load_serving
from reasoning_plane.inputs import load_fleet

REPO = Path(__file__).resolve().parents[3]
FLEET = load_fleet(REPO / "examples" / "seed_scenario" / "fleet.yaml")
EXAMPLE = yaml.safe_load((REPO / "config" / "serving.yaml").read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_example_matches_the_example_fleet() -> None:
    config = load_serving(REPO / "config" / "serving.yaml", FLEET)
    ids = {e.endpoint_id: e for e in config.endpoints}
    assert ids["eu-fra-minilm"].runtime == "sentence-transformers"
    assert config.kinds["all-MiniLM-L6-v2"] == "embedding"
    assert config.equivalents["gemma-3-270m"] == ("gemma-3-270m-q8",)
    assert config.slo_ttft_ms["customer-support"] == 800.0
    assert "media-ml" not in config.slo_ttft_ms and config.priorities["media-ml"] == 50
    assert (config.host, config.port, config.probe_interval_s) == ("0.0.0.0", 8000, 2.0)
    assert config.key_cache_s == 5.0  # a revoked API key works at most 5 s more


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (
            lambda d: d["endpoints"][0].update(cluster="eu-ams-a10"),
            "endpoints[0] (eu-fra-gemma).cluster",
            "'eu-ams-a10' is not a cluster of the fleet",
        ),
        (
            lambda d: d["endpoints"][0].update(gpu_type="H100-80GB"),
            "endpoints[0] (eu-fra-gemma).gpu_type",
            "'H100-80GB' is not a GPU pool of cluster eu-fra-a10",
        ),
        (
            lambda d: d["endpoints"][1].update(models=["llama-70b"]),
            "endpoints[1] (eu-par-gemma-q8).models[0]",
            "'llama-70b' is not a model of this file",
        ),
        (
            lambda d: d["models"][0].update(equivalents=["all-MiniLM-L6-v2"]),
            "models[0] (gemma-3-270m).equivalents[0]",
            "is of kind embedding",
        ),
        (
            lambda d: d["models"][0].update(equivalents=["gemma-3-270m"]),
            "models[0] (gemma-3-270m).equivalents[0]",
            "not its own equivalent",
        ),
        (
            lambda d: d["endpoints"][0].update(runtime="tgi"),
            "endpoints[0] (eu-fra-gemma).runtime",
            "must be one of",
        ),
        (
            lambda d: d["endpoints"][0].update(slots=0),
            "endpoints[0] (eu-fra-gemma).slots",
            "must be at least 1",
        ),
        (
            lambda d: d["endpoints"][1].update(id="eu-fra-gemma"),
            "endpoints[1] (eu-fra-gemma).id",
            "duplicate 'eu-fra-gemma'",
        ),
        (
            lambda d: d["teams"][0].update(slo_ttft_ms=0),
            "teams[0] (customer-support).slo_ttft_ms",
            "must be greater than 0",
        ),
        (
            lambda d: d.update(high_priority_share=1.5),
            "high_priority_share",
            "between 0 and 1",
        ),
        (
            lambda d: d.update(key_cache_s=3600),
            "key_cache_s",
            "at most 300",
        ),
        (
            lambda d: d.update(key_cache_s=-1),
            "key_cache_s",
            "at least 0",
        ),
        (
            lambda d: d["endpoints"][0].update(url="gemma:8080"),
            "endpoints[0] (eu-fra-gemma).url",
            "http:// or https:// URL",
        ),
    ],
)
def test_a_mistake_is_refused_naming_file_and_field(
    tmp_path: Path, change, field: str, problem: str
) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputFileError) as refused:
        load_serving(path, FLEET)
    assert refused.value.field == field, str(refused.value)
    assert problem in refused.value.problem, str(refused.value)
    assert str(refused.value).startswith(f"{path}: {field}: ")


NODES = """
nodes:
  - {name: fra-1, cluster: eu-fra-a10, gpu_type: A10, memory: {total_gb: 24, reserve_gb: 2},
     runtimes: [llama.cpp, vllm]}
  - {name: par-1, cluster: eu-par-h100, memory: {total_gb: 80, reserve_gb: 2},
     runtimes: [vllm]}
  - {name: ams-1, cluster: eu-ams-a10, gpu_type: A10, memory: {total_gb: 24, reserve_gb: 2},
     runtimes: [llama.cpp]}
models:
  - {name: gemma-3-270m, runtime: llama.cpp, source: m.gguf, cold_load_s: 1.3,
     shape: {weights_gb: 0.24, layers: 18, kv_heads: 1, head_dim: 256}}
  - {name: gemma-3-270m, runtime: vllm, source: google/gemma-3-270m, cold_load_s: 30,
     wake_s: 2, shape: {weights_gb: 0.6, layers: 18, kv_heads: 1, head_dim: 256}}
"""


def _on_node(d: dict, i: int = 0, **changes) -> None:
    """Endpoint ``i`` on a serving node instead of its URL, cluster and pool."""
    for key in ("url", "cluster", "gpu_type", "load_ms", "wake_ms"):
        d["endpoints"][i].pop(key, None)
    d["endpoints"][i].update({"node": "fra-1", **changes})


def test_an_endpoint_on_a_node_takes_its_cluster_and_pool_from_the_nodes_file(
    tmp_path: Path,
) -> None:
    nodes = tmp_path / "serving_nodes.yaml"
    nodes.write_text(NODES)
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    _on_node(doc)
    config = load_serving(_write(tmp_path, doc), FLEET, nodes)
    (e,) = [e for e in config.endpoints if e.endpoint_id == "eu-fra-gemma"]
    assert (e.node, e.cluster, e.gpu_type, e.url) == ("fra-1", "eu-fra-a10", "A10", "")
    # its model loads as the nodes file says (cold_load_s: 1.3 s), written only there
    assert (e.load_ms, e.wake_ms) == (1300.0, None)
    doc["endpoints"][0].update(runtime="vllm")
    config = load_serving(_write(tmp_path, doc), FLEET, nodes)
    (e,) = [e for e in config.endpoints if e.endpoint_id == "eu-fra-gemma"]
    assert (e.load_ms, e.wake_ms) == (30_000.0, 2_000.0)
    # a file with no endpoint on a node does not read the nodes file at all
    assert load_serving(REPO / "config" / "serving.yaml", FLEET, tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (
            lambda d: d["endpoints"][0].update(node="fra-1"),
            "endpoints[0] (eu-fra-gemma).node",
            "exactly one of url and node",
        ),
        (
            lambda d: d["endpoints"][0].pop("url"),
            "endpoints[0] (eu-fra-gemma).url",
            "exactly one of url and node",
        ),
        (
            lambda d: _on_node(d, cluster="eu-fra-a10"),
            "endpoints[0] (eu-fra-gemma).cluster",
            "has the node's cluster (the serving nodes file says it)",
        ),
        (
            lambda d: _on_node(d, node="nope"),
            "endpoints[0] (eu-fra-gemma).node",
            "'nope' is not a node of",
        ),
        (
            lambda d: _on_node(d, node="par-1", runtime="vllm"),
            "endpoints[0] (eu-fra-gemma).node",
            "node 'par-1' names no gpu_type",
        ),
        (
            lambda d: _on_node(d, node="par-1"),
            "endpoints[0] (eu-fra-gemma).runtime",
            "node 'par-1' runs ['vllm']",
        ),
        (
            lambda d: _on_node(d, node="ams-1"),
            "endpoints[0] (eu-fra-gemma).node",
            "'eu-ams-a10' (node ams-1 of",
        ),
        (
            lambda d: _on_node(d, models=["gemma-3-270m", "gemma-3-270m-q8"]),
            "endpoints[0] (eu-fra-gemma).models",
            "one llama.cpp server per model",
        ),
        (
            lambda d: _on_node(d, load_ms=900),
            "endpoints[0] (eu-fra-gemma).load_ms",
            "loads and wakes its models as the serving nodes file says",
        ),
        (
            lambda d: _on_node(d, models=["gemma-3-270m-q8"]),
            "endpoints[0] (eu-fra-gemma).models",
            "'gemma-3-270m-q8' is not a llama.cpp model of",
        ),
        (
            lambda d: d["endpoints"][0].update(wake_ms=100),
            "endpoints[0] (eu-fra-gemma).wake_ms",
            "llama.cpp has no sleep mode",
        ),
    ],
)
def test_an_endpoint_on_a_node_is_refused_naming_file_and_field(
    tmp_path: Path, change, field: str, problem: str
) -> None:
    nodes = tmp_path / "serving_nodes.yaml"
    nodes.write_text(NODES)
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputFileError) as refused:
        load_serving(path, FLEET, nodes)
    assert refused.value.field == field, str(refused.value)
    assert problem in refused.value.problem, str(refused.value)
    assert str(refused.value).startswith(f"{path}: {field}: ")


def test_an_endpoint_on_a_node_without_a_nodes_file_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    _on_node(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputFileError) as refused:
        load_serving(path, FLEET)
    assert str(refused.value) == (
        f"{path}: endpoints[0] (eu-fra-gemma).node: no serving nodes file was given to find "
        "node 'fra-1' in"
    )
