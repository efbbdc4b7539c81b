"""Model use through the gateway is the Cedar policies' decision (the project's own files plus a
rule that forbids a team a model), cached per principal, model facts and policy version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data_plane.access import Principal
from data_plane.authz import POLICY_DIR
from data_plane.catalog import CatalogEntry
from serving.authorization import ModelAccess, refusal
from tests.unit.plane import factory

MODEL = "gemma-3-270m"
COPILOT = Principal(
    "support-copilot", frozenset({"customer-support"}), "PII", frozenset({"EU"}), "EU", "agent"
)
TAGGER = Principal(
    "media-tagger", frozenset({"media-ml"}), "INTERNAL", frozenset({"US", "EU"}), "US", "agent"
)
FORBID_MEDIA = """
@id("media-ml-not-gemma")
forbid (
  principal in Plane::Team::"media-ml",
  action == Plane::Action::"use_model",
  resource == Plane::Model::"gemma-3-270m"
);
"""


def _entry(name: str, classification: str = "INTERNAL", residency: str = "EU") -> CatalogEntry:
    return CatalogEntry(factory.record(name, classification, residency), "customer-support")


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, folder)
    return folder


def test_a_team_forbidden_a_model_is_refused_with_the_rule_and_version(policies: Path) -> None:
    entries = {MODEL: _entry(MODEL)}
    open_access = ModelAccess(lambda: entries, policies)
    assert open_access.decide(TAGGER, MODEL).allowed  # INTERNAL, in its regions: the default
    (policies / "serving.cedar").write_text(FORBID_MEDIA)
    access = ModelAccess(lambda: entries, policies)
    denied = access.decide(TAGGER, MODEL)
    assert not denied.allowed and "forbid: media-ml-not-gemma" in denied.reasons
    message = refusal(denied)
    assert message.startswith("media-tagger may not use Model::gemma-3-270m: forbid: media-ml")
    assert access.version in message and access.version != open_access.version
    assert access.decide(COPILOT, MODEL).allowed


def test_an_uncatalogued_model_is_refused_to_everyone(policies: Path) -> None:
    access = ModelAccess(dict, policies)
    denied = access.decide(COPILOT, "mystery-model")
    assert not denied.allowed and "forbid: unknown-classification" in denied.reasons


def test_the_decision_is_cached_until_the_facts_or_the_policies_change(policies: Path) -> None:
    entries = {MODEL: _entry(MODEL)}
    access = ModelAccess(lambda: entries, policies)
    for _ in range(100):
        assert access.decide(TAGGER, MODEL).allowed
    assert access.evaluations == 1  # one Cedar call; the other 99 cost a lookup
    # the model is reclassified PII in the catalog: the cached answer is not reused
    entries[MODEL] = _entry(MODEL, "PII")
    assert not access.decide(TAGGER, MODEL).allowed and access.evaluations == 2
    entries[MODEL] = _entry(MODEL)
    assert access.decide(TAGGER, MODEL).allowed and access.evaluations == 2  # still cached
    # a new rule: refresh sees the new version, and the old answers are never used again
    (policies / "serving.cedar").write_text(FORBID_MEDIA)
    before = access.version
    access.refresh()
    assert access.version != before
    assert not access.decide(TAGGER, MODEL).allowed and access.evaluations == 3


def test_a_broken_policy_folder_keeps_the_last_good_policies(policies: Path) -> None:
    entries = {MODEL: _entry(MODEL)}
    access = ModelAccess(lambda: entries, policies)
    (policies / "serving.cedar").write_text("forbid (principal, action, resource) when { nope };")
    with pytest.raises(ValueError):
        access.refresh()
    assert access.decide(TAGGER, MODEL).allowed  # the version that loaded last still decides
