"""Signed decisions: the plane signs what it decided, the launcher and the data guard verify it.

A decision row in ``plane.decisions`` is only as trustworthy as whoever can write that table. The
plane therefore signs each decision's *binding* (`reasoning_plane.binding`: which workload, which
run key, where, on what, for which team, under which governance) with an Ed25519 key that is
never stored in the database. A row written by anything else (an insider with the database URL, a
copied row with a changed cluster) does not verify, and no run is launched or reads data on it.

Keys (plain files, as mounted from a Kubernetes Secret):

* ``PLANE_SIGNING_KEY_FILE``: the plane's private key (PKCS#8 PEM, Ed25519). Only the process
  that places work (the Dagster daemon running the placement sensor, ``plane run``) needs it.
* ``PLANE_VERIFY_KEYS``: the public keys that verify decisions: a PEM file or a folder of
  ``*.pem`` files (SubjectPublicKeyInfo). Rotation: add the new public key here, switch
  ``PLANE_SIGNING_KEY_FILE`` to the new private key, and remove the old public key once no
  decision signed with it is still to be launched. Unset, the signing key's own public key
  verifies.
* Neither set and not inside Kubernetes: an embedded key is created on first use at
  ``$PLANE_STATE_DIR/signing/decision-key.pem`` (mode 0600), for the embedded default. Inside
  Kubernetes (``KUBERNETES_SERVICE_HOST`` set) a missing key is an error: every pod would
  otherwise make its own.

Each signature names its key by id (the first 16 hex digits of the SHA-256 of the raw public
key), so verification picks the right key and a retired key's signatures stop verifying.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

SIGNING_KEY_ENV = "PLANE_SIGNING_KEY_FILE"
VERIFY_KEYS_ENV = "PLANE_VERIFY_KEYS"
STATE_DIR_ENV = "PLANE_STATE_DIR"
EMBEDDED_KEY = Path("signing") / "decision-key.pem"


class SigningError(ValueError):
    """No usable key: missing, unreadable, or not an Ed25519 key."""


def canonical(content: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: sorted-key JSON without whitespace."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def sign(self, content: Mapping[str, Any]) -> str:
        return base64.b64encode(self.private.sign(canonical(content))).decode()


@dataclass(frozen=True)
class Verifier:
    keys: Mapping[str, Ed25519PublicKey]  # key id -> public key

    def problem(self, content: Mapping[str, Any], signature: str | None, kid: str | None) -> str:
        """Why ``signature`` does not sign ``content`` (empty when it does)."""
        if not signature or not kid:
            return "it carries no signature of the reasoning plane"
        public = self.keys.get(kid)
        if public is None:
            return f"it is signed with key {kid}, which is not a verification key here"
        try:
            public.verify(base64.b64decode(signature, validate=True), canonical(content))
        except (InvalidSignature, ValueError):
            return f"its signature (key {kid}) does not match its content"
        return ""


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"{path}: cannot read the signing key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: the signing key is not an Ed25519 key")
    return key


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"{path}: cannot read the verification key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: the verification key is not an Ed25519 key")
    return key


def _state_dir() -> Path:
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    here = Path(__file__).resolve().parents[1]
    return (here if (here / "pyproject.toml").exists() else Path.cwd()) / ".plane"


def _embedded_key() -> Ed25519PrivateKey:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise SigningError(
            f"{SIGNING_KEY_ENV} is not set: inside Kubernetes the decision signing key must come "
            "from a Secret (see deploy/); no key is generated in a pod"
        )
    path = _state_dir() / EMBEDDED_KEY
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:  # two processes may race here: the first file wins, the other reads it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
    return _load_private(path)


def signer() -> Signer:
    """The plane's signing key (`PLANE_SIGNING_KEY_FILE`, else the embedded key)."""
    configured = os.environ.get(SIGNING_KEY_ENV)
    if configured:
        return Signer(_load_private(Path(configured).expanduser()))
    return Signer(_embedded_key())


def verifier() -> Verifier:
    """The keys that verify decisions (`PLANE_VERIFY_KEYS`, else the signing key's public key)."""
    configured = os.environ.get(VERIFY_KEYS_ENV)
    if configured:
        root = Path(configured).expanduser()
        files = sorted(root.glob("*.pem")) if root.is_dir() else [root]
        if not files:
            raise SigningError(f"{root}: {VERIFY_KEYS_ENV} names a folder with no *.pem file")
        publics = [_load_public(f) for f in files]
        return Verifier({key_id(p): p for p in publics})
    public = signer().private.public_key()
    return Verifier({key_id(public): public})
