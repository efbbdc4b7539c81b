"""Who may use which model through the gateway: the project's Cedar policies, cached.

The rules are `data_plane.authz`'s (action ``use_model`` of ``config/policies/access.cedar``),
asked exactly as `data_plane.model_registry.use_model` asks them: the model is the resource its
catalog record describes (owner team, classification, residency), the answers are served in the
caller's home region. A model the catalog does not hold is UNKNOWN and so denied by the policies
themselves (fail closed).

A decision depends only on the principal, the model's catalog facts and the policy version, so it
is cached under exactly those: the hot path pays one dictionary lookup. `refresh` (the gateway's
probe loop calls it off the event loop) reloads the policies when their version changes and the
catalog when the database's changes, so a new rule or a reclassified model takes effect within a
probe interval, and a cached answer of an older version or older facts is never used again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from data_plane.access import Principal
from data_plane.authz import POLICY_DIR, AccessDecision, Authorizer, Resource, policy_version
from data_plane.catalog import CatalogEntry

MAX_CACHED = 100_000  # (principal, model) pairs; beyond it the cache starts again


def model_resource(model: str, entry: CatalogEntry | None) -> Resource:
    """The model as Cedar sees it: its catalog record, or UNKNOWN everything without one."""
    if entry is None:
        return Resource(model, "", "UNKNOWN", "UNKNOWN", kind="Model")
    return Resource.from_entry(entry, kind="Model")


class ModelAccess:
    """Cedar's ``use_model`` decisions for the gateway, cached per (principal, model facts,
    policy version)."""

    def __init__(
        self,
        entries: Callable[[], Mapping[str, CatalogEntry]],
        directory: Path | str = POLICY_DIR,
    ) -> None:
        self.directory = Path(directory)
        self.authorizer = Authorizer(self.directory)
        self.entries = entries
        self._cache: dict[tuple[Principal, Resource, str], AccessDecision] = {}
        self.evaluations = 0  # Cedar calls made (the rest were cache hits)

    @property
    def version(self) -> str:
        return self.authorizer.version

    def decide(self, principal: Principal, model: str) -> AccessDecision:
        """May ``principal`` use ``model`` (answers served in its home region)?"""
        resource = model_resource(model, self.entries().get(model))
        key = (principal, resource, self.authorizer.version)
        found = self._cache.get(key)
        if found is None:
            found = self.authorizer.use_model(
                principal, resource, serve_region=principal.home_region
            )
            self.evaluations += 1
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = found
        return found

    def refresh(self) -> None:
        """Reload the policies when the files' version changed. A folder that no longer loads
        keeps the last good policies (the error is raised for the caller to log)."""
        if policy_version(self.directory) != self.authorizer.version:
            self.authorizer = Authorizer(self.directory)
            self._cache.clear()


def refusal(decision: AccessDecision) -> str:
    """The 403 message of a denied decision: who, which model, the rules, the policy version."""
    reasons = "; ".join(decision.reasons) or "denied"
    return (
        f"{decision.principal} may not use {decision.resource}: {reasons} "
        f"[policy {decision.policy_version}]"
    )
