"""Per-object caches for values derived from immutable model objects.

A `Snapshot`, `Fleet` or `PlacementPolicy` never changes once built, so what is derived from it
(the telemetry hash, the policy version, the fleet's name index, `index.FleetIndex`) is computed
once and kept as long as the object lives. The cache is held beside the object (keyed by its id,
dropped by a weak reference when the object is collected), never inside it: the objects stay
plain frozen dataclasses, equal, printable and picklable as before.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_lock = threading.Lock()
_caches: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def _forget(key: int, ref: weakref.ref, caches: dict = _caches) -> None:
    # Bound as a default: it also runs while the interpreter tears the module down.
    entry = caches.get(key)
    if entry is not None and entry[0] is ref:
        caches.pop(key, None)


def cache_of(obj: object) -> dict[str, Any]:
    """The cache of ``obj`` (created empty on first use, gone when ``obj`` is collected)."""
    key = id(obj)
    entry = _caches.get(key)
    if entry is not None and entry[0]() is obj:
        return entry[1]
    with _lock:
        entry = _caches.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        ref = weakref.ref(obj, lambda r, key=key, forget=_forget: forget(key, r))
        cache: dict[str, Any] = {}
        _caches[key] = (ref, cache)
        return cache
