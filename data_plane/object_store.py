"""Object storage (S3 API, through fsspec/s3fs): zone locations and where a location really is.

Data whose residency is a zone is stored only at that zone's location (``s3://bucket/prefix``),
and every location is checked against what the storage itself reports: the bucket's region,
mapped to a zone by the governance policy's ``region_zones``. A location configured for EU whose
bucket is in ``us-east-1`` is refused, not trusted. Residency that is unknown, composite
(``EU+US``) or of a zone with no location has nowhere to go: writing or reading it fails with the
reason (fail closed). Plain Python; the Dagster resource is `resources.lakehouse`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from data_plane.classification import UNKNOWN, ZONE_RE, residency_parts

SCHEMES = ("s3", "s3a")


class StorageResidencyError(RuntimeError):
    """Data would be stored or read where its residency does not allow (nothing was done)."""


def is_remote(location: str) -> bool:
    return urlsplit(str(location)).scheme in SCHEMES


def bucket_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket/... URL")
    return parts.netloc


def parse_zone_locations(value: str | None, where: str) -> dict[str, str]:
    """``EU=s3://plane-eu/lakehouse,US=s3://plane-us/lakehouse`` -> {zone: location}.

    Errors name ``where`` (the setting) and the entry. ``UNKNOWN=...`` is the operator's explicit
    location for data of unknown residency (like a cluster marked accepts_unknown_residency)."""
    out: dict[str, str] = {}
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        zone, sep, location = (s.strip() for s in entry.partition("="))
        if not sep or not location:
            raise ValueError(f"{where}: {entry!r}: expected ZONE=s3://bucket/prefix")
        if not ZONE_RE.fullmatch(zone):
            raise ValueError(f"{where}: {zone!r}: a zone is upper case (EU, US, APAC...)")
        if not is_remote(location) or not urlsplit(location).netloc:
            raise ValueError(f"{where}: {zone}: {location!r} is not an s3://bucket/prefix URL")
        if zone in out:
            raise ValueError(f"{where}: {zone}: given twice")
        out[zone] = location.rstrip("/")
    return out


def s3_options(
    endpoint_url: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    region: str | None,
) -> dict[str, Any]:
    """s3fs storage options; unset credentials leave s3fs its default chain (IRSA, profiles)."""
    options: dict[str, Any] = {}
    if access_key_id or secret_access_key:
        if not (access_key_id and secret_access_key):
            raise ValueError(
                "PLANE_S3_ACCESS_KEY_ID and PLANE_S3_SECRET_ACCESS_KEY: set both or neither"
            )
        options["key"], options["secret"] = access_key_id, secret_access_key
    client: dict[str, Any] = {}
    if endpoint_url:
        client["endpoint_url"] = endpoint_url
    if region:
        client["region_name"] = region
    if client:
        options["client_kwargs"] = client
    return options


def filesystem(options: Mapping[str, Any]) -> Any:
    import s3fs  # imported on use: local-only deployments never load botocore

    return s3fs.S3FileSystem(skip_instance_cache=True, **dict(options))


def bucket_region(fs: Any, bucket: str) -> str:
    """The region the storage reports for the bucket (``us-east-1`` when it reports none)."""
    try:
        answer = fs.call_s3("get_bucket_location", Bucket=bucket)
    except Exception as exc:  # any failure leaves the location unverified
        raise StorageResidencyError(
            f"s3://{bucket}: cannot ask the storage where the bucket is ({exc}); "
            "its zone is unknown, so nothing is read or written there"
        ) from exc
    return answer.get("LocationConstraint") or "us-east-1"


@dataclass
class ZoneLocations:
    """The zone -> location map, each location verified against the storage once."""

    locations: Mapping[str, str]
    fs: Any
    zone_of_region: Callable[[str | None], str]
    _verified: dict[str, str] = field(default_factory=dict)

    def zone_of(self, url: str) -> str:
        """The zone the storage puts this URL's bucket in (UNKNOWN for an unmapped region)."""
        bucket = bucket_of(url)
        if bucket not in self._verified:
            self._verified[bucket] = self.zone_of_region(bucket_region(self.fs, bucket))
        return self._verified[bucket]

    def for_residency(self, residency: str, what: str) -> str:
        """The one location that may hold data of this residency, verified; else a clear error."""
        parts = residency_parts(residency)
        if UNKNOWN in parts:
            if UNKNOWN in self.locations:
                return self.locations[UNKNOWN]
            raise StorageResidencyError(
                f"{what}: residency is unknown, so it may be stored nowhere it could leave its "
                "zone (declare its storage endpoint, or give PLANE_LAKEHOUSE_ZONES an UNKNOWN "
                "location meant for such data)"
            )
        if len(parts) > 1:
            raise StorageResidencyError(
                f"{what}: residency {residency} spans zones; no single zone's location may hold it"
            )
        zone = next(iter(parts))
        if zone not in self.locations:
            raise StorageResidencyError(
                f"{what}: residency {zone} has no location in PLANE_LAKEHOUSE_ZONES "
                f"(configured: {', '.join(sorted(self.locations)) or 'none'})"
            )
        location = self.locations[zone]
        actual = self.zone_of(location)
        if actual != zone:
            raise StorageResidencyError(
                f"PLANE_LAKEHOUSE_ZONES: {zone}: {location} is in zone {actual} by its bucket's "
                f"region, not {zone}; {what} is not written there"
            )
        return location

    def check_read(self, url: str, residency: str, what: str) -> None:
        """Refuse to read data of ``residency`` from a location outside its zone."""
        check_read_zone(self.zone_of(url), url, residency, what)


def check_read_zone(zone: str, url: str, residency: str, what: str) -> None:
    parts = residency_parts(residency)
    if UNKNOWN in parts or zone == UNKNOWN or parts != {zone}:
        raise StorageResidencyError(
            f"{what}: residency {residency}, but {url} is in zone {zone} (by its bucket's "
            "region): data is read only from a location in its own zone"
        )
