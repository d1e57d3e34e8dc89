"""Manifests, indexes and image configs (OCI image-spec and Docker schema 2).

    PullImage("app:v1")
      │ GET /v2/<name>/manifests/v1 ─► index / manifest list ─(this host's platform)─┐
      │                                                                              ▼
      └───────────────────────────────────────────────────────────────────► image manifest
                                               config descriptor ◄──┘  └─► layer descriptors
    config.rootfs.diff_ids[i] = sha256 of layer i after decompression (its DiffID)

Schema 1 manifests are legacy (containerd 2.1 removed them) and refused. Documents are
checked against CVE-2021-41190: a `mediaType` in the body must equal the Content-Type the
registry sent, and a document carrying both `manifests` and `layers`/`config` is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform as pyplatform
from collections.abc import Sequence
from typing import Any

from image.errors import InvalidReferenceError, ManifestError, PlatformNotFoundError
from image.reference import check_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# What crib asks for, in the order containerd sends them (core/remotes/docker/resolver.go).
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"))

LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
# Limits on documents held in memory (a hostile registry must not make crib buffer gigabytes).
MANIFEST_MAX_BYTES = 4 << 20
CONFIG_MAX_BYTES = 16 << 20


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """`algorithm:hex` of `data`."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclasses.dataclass(frozen=True)
class Platform:
    """os/architecture/variant of an image or of this host."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what to fetch and how to verify it."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """An OCI image manifest or a Docker schema 2 manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config crib uses; `raw` is the whole document."""

    diff_ids: tuple[str, ...]
    user: str
    platform: Platform
    raw: dict[str, Any]


def _obj(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{what}: want a JSON object, got {type(value).__name__}")
    return value


def _descriptor(value: object, what: str) -> Descriptor:
    doc = _obj(value, what)
    media_type = doc.get("mediaType", "")
    digest = doc.get("digest")
    size = doc.get("size")
    if not isinstance(media_type, str):
        raise ManifestError(f"{what}.mediaType: want a string, got {media_type!r}")
    if not isinstance(digest, str):
        raise ManifestError(f"{what}.digest: missing")
    try:
        check_digest(digest, f"{what}.digest")
    except InvalidReferenceError as err:
        raise ManifestError(str(err)) from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}.size: want a non-negative integer, got {size!r}")
    plat = None
    if "platform" in doc:
        p = _obj(doc["platform"], f"{what}.platform")
        plat = Platform(
            os=str(p.get("os", "")),
            architecture=str(p.get("architecture", "")),
            variant=str(p.get("variant", "")),
        )
    urls = doc.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{what}.urls: want a list of strings")
    return Descriptor(media_type, digest, size, plat, tuple(urls))


def parse_document(body: bytes, content_type: str, what: str) -> Index | Manifest:
    """Parse a manifest or index as served with `content_type` (parameters ignored).

    Raises `ManifestError` naming `what` (usually the reference) on anything unusable.
    """
    served = content_type.split(";")[0].strip().lower()
    try:
        doc = _obj(json.loads(body), what)
    except ValueError as err:
        raise ManifestError(f"{what}: manifest is not JSON: {err}") from None
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError(f"{what}: mediaType {declared!r} is not a string")
    # CVE-2021-41190: the body's mediaType, when present, must equal the Content-Type.
    generic = ("", "application/json", "application/octet-stream", "text/plain")
    if declared and served not in generic and declared != served:
        raise ManifestError(f"{what}: mediaType {declared!r} differs from Content-Type {served!r}")
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise ManifestError(f"{what}: document has both manifests and layers/config")
    media_type = declared or (served if served not in generic else "")
    if not media_type:
        # OCI documents may omit mediaType; the structure says which one it is.
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError(
            f"{what}: Docker schema 1 manifests are not supported (re-push the image with"
            " a current client)"
        )
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"{what}: schemaVersion {doc.get('schemaVersion')!r}, want 2")
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError(f"{what}: index without a manifests list")
        return Index(
            media_type,
            tuple(_descriptor(e, f"{what}: manifests[{i}]") for i, e in enumerate(entries)),
        )
    if media_type in MANIFEST_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"{what}: manifest without a layers list")
        config = _descriptor(doc.get("config"), f"{what}: config")
        parsed = tuple(_descriptor(e, f"{what}: layers[{i}]") for i, e in enumerate(layers))
        return Manifest(media_type, config, parsed)
    raise ManifestError(f"{what}: unsupported manifest media type {media_type!r}")


def parse_config(body: bytes, what: str) -> ImageConfig:
    """Parse an image config; `rootfs.diff_ids` must be a list of digests."""
    try:
        doc = _obj(json.loads(body), what)
    except ValueError as err:
        raise ManifestError(f"{what}: image config is not JSON: {err}") from None
    rootfs = _obj(doc.get("rootfs"), f"{what}: rootfs")
    diff_ids = rootfs.get("diff_ids", [])
    if not isinstance(diff_ids, list):
        raise ManifestError(f"{what}: rootfs.diff_ids: want a list")
    for i, diff_id in enumerate(diff_ids):
        if not isinstance(diff_id, str):
            raise ManifestError(f"{what}: rootfs.diff_ids[{i}]: want a digest string")
        try:
            check_digest(diff_id, f"{what}: rootfs.diff_ids[{i}]")
        except InvalidReferenceError as err:
            raise ManifestError(str(err)) from None
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ManifestError(f"{what}: config: want a JSON object")
    user = config.get("User") or ""
    if not isinstance(user, str):
        raise ManifestError(f"{what}: config.User: want a string, got {user!r}")
    plat = Platform(
        os=str(doc.get("os", "")),
        architecture=str(doc.get("architecture", "")),
        variant=str(doc.get("variant", "")),
    )
    return ImageConfig(tuple(diff_ids), user, plat, doc)


def layer_compression(desc: Descriptor) -> str:
    """ "gzip", "zstd" or "none" for a layer descriptor; refuses non-layer types."""
    try:
        return LAYER_TYPES[desc.media_type]
    except KeyError:
        if desc.media_type.endswith("+encrypted"):
            raise ManifestError(
                f"layer {desc.digest}: encrypted layers ({desc.media_type}) are not supported"
            ) from None
        raise ManifestError(
            f"layer {desc.digest}: unsupported layer media type {desc.media_type!r}"
        ) from None


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID of each prefix of the layer stack (image-spec config.md "Layer ChainID")."""
    result: list[str] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            result.append(digest_of(f"{result[-1]} {diff_id}".encode()))
    return result


# --- platforms -----------------------------------------------------------------------------

# uname -m -> (GOARCH, variant), the names images use (image-index.md platform table).
_MACHINES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "loongarch64": ("loong64", ""),
}


def host_platform() -> Platform:
    """This host's platform, named as images name it (linux/amd64, linux/arm64/v8, ...)."""
    machine = pyplatform.machine()
    arch, variant = _MACHINES.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def _variant_rank(want: Platform, have: Platform) -> int | None:
    """How well `have` suits a host `want`; None if it cannot run. Lower is better."""
    if have.os != want.os or have.architecture != want.architecture:
        return None
    if want.architecture == "arm":
        # An armv7 host runs v7, v6 and v5 images; prefer the newest it can run.
        order = ["v7", "v6", "v5"]
        host = want.variant or "v7"
        usable = order[order.index(host) :] if host in order else [host]
        variant = have.variant or "v7"
        return usable.index(variant) if variant in usable else None
    if want.architecture == "arm64":
        return 0 if have.variant in ("", "v8") else 1 if have.variant.startswith("v8") else None
    if want.architecture == "amd64":
        # amd64 micro-architecture levels v1..v4: v1 (or none) runs everywhere.
        return 0 if have.variant in ("", "v1") else None
    return 0 if not have.variant or have.variant == want.variant else None


def select_manifest(index: Index, want: Platform, what: str) -> Descriptor:
    """The best manifest of `index` for platform `want` (first of the best rank wins)."""
    best: tuple[int, Descriptor] | None = None
    seen = []
    for entry in index.manifests:
        if entry.media_type and entry.media_type not in MANIFEST_TYPES + INDEX_TYPES:
            continue  # attestations and other artifacts
        plat = entry.platform
        if plat is None:
            continue
        seen.append(str(plat))
        rank = _variant_rank(want, plat)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best is None:
        listed = ", ".join(seen) or "none"
        raise PlatformNotFoundError(f"{what}: no manifest for {want} (index has: {listed})")
    return best[1]
