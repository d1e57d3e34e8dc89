"""Build OCI / Docker images in memory and push them to a test registry.

    layer = Layer([file("etc/hello", b"hi\\n"), directory("tmp", mode=0o1777)], "gzip")
    image = Image([busybox_layer(), layer], config={"User": "1000", "Cmd": ["sh"]})
    digest = push_image(registry, "test/app", "v1", image)

Entries are written in PAX format (so xattrs, long names and sub-second times survive), in the
order given: a test controls exactly what a layer holds, including whiteouts (`whiteout`,
`opaque`) and hostile entries. `busybox_image` makes a runnable image from Debian's
busybox-static with /etc/passwd and /etc/group, for the container tests.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import tarfile
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
}
BUSYBOX = "/bin/busybox"
MTIME = 1_700_000_000
# Applets linked into test images (enough for a shell, probes and the container tests).
APPLETS = (
    "sh", "ls", "cat", "echo", "sleep", "id", "env", "pwd", "touch", "mkdir", "rm", "ps",
    "hostname", "wc", "head", "stat", "true", "false", "grep", "test", "kill", "mount",
    "whoami", "nslookup", "wget", "nc", "ip", "ping", "top", "tail", "tee", "date", "du",
)  # fmt: skip


def host_arch() -> str:
    """This host's GOARCH name (amd64, arm64, ...)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def sha256(data: bytes) -> str:
    """sha256:<hex> of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- entries ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tar entry; `kind` is file, dir, symlink, hardlink, char, block or fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = MTIME
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = {
            "file": tarfile.REGTYPE,
            "dir": tarfile.DIRTYPE,
            "symlink": tarfile.SYMTYPE,
            "hardlink": tarfile.LNKTYPE,
            "char": tarfile.CHRTYPE,
            "block": tarfile.BLKTYPE,
            "fifo": tarfile.FIFOTYPE,
        }[self.kind]
        info.mode = self.mode
        info.uid, info.gid = self.uid, self.gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        info.linkname = self.linkname
        info.devmajor, info.devminor = self.devmajor, self.devminor
        info.size = len(self.data) if self.kind == "file" else 0
        pax: dict[str, str] = {}
        for key, value in self.xattrs:
            pax["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        if self.mtime != int(self.mtime):
            pax["mtime"] = f"{self.mtime:.9f}"
        info.pax_headers = pax
        return info


def file(name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> Entry:
    """A regular file."""
    return Entry(name, "file", data=data, mode=mode, **kw)


def directory(name: str, mode: int = 0o755, **kw: Any) -> Entry:
    """A directory."""
    return Entry(name, "dir", mode=mode, **kw)


def symlink(name: str, target: str, **kw: Any) -> Entry:
    """A symbolic link to `target` (stored as is)."""
    return Entry(name, "symlink", linkname=target, mode=0o777, **kw)


def hardlink(name: str, target: str, **kw: Any) -> Entry:
    """A hard link to the entry named `target`."""
    return Entry(name, "hardlink", linkname=target, **kw)


def device(name: str, kind: str, major: int, minor: int, mode: int = 0o666, **kw: Any) -> Entry:
    """A char or block device node, or a fifo."""
    return Entry(name, kind, mode=mode, devmajor=major, devminor=minor, **kw)


def whiteout(path: str) -> Entry:
    """The whiteout hiding `path` of lower layers (`dir/.wh.name`)."""
    head, _, name = path.rpartition("/")
    return file(f"{head}/.wh.{name}" if head else f".wh.{name}", mode=0o600)


def opaque(dir_path: str) -> Entry:
    """The marker hiding every lower child of `dir_path`."""
    return file(f"{dir_path}/.wh..wh..opq", mode=0o600)


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A PAX tar holding `entries` in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            data = io.BytesIO(entry.data) if entry.kind == "file" else None
            tar.addfile(entry.tarinfo(), data)
    return buf.getvalue()


# --- layers and images ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    """A layer: its entries, and how its blob is compressed (gzip, zstd or none)."""

    entries: tuple[Entry, ...]
    compression: str = "gzip"
    raw_tar: bytes | None = None  # a prepared tar (hostile tests), instead of entries

    def __init__(
        self, entries: Sequence[Entry] = (), compression: str = "gzip", raw_tar: bytes | None = None
    ) -> None:
        object.__setattr__(self, "entries", tuple(entries))
        object.__setattr__(self, "compression", compression)
        object.__setattr__(self, "raw_tar", raw_tar)

    @functools.cached_property
    def tar(self) -> bytes:
        return self.raw_tar if self.raw_tar is not None else tar_bytes(self.entries)

    @functools.cached_property
    def blob(self) -> bytes:
        if self.compression == "gzip":
            return gzip.compress(self.tar, compresslevel=6, mtime=0)
        if self.compression == "zstd":
            return zstandard.ZstdCompressor(level=3).compress(self.tar)
        return self.tar

    @property
    def digest(self) -> str:
        return sha256(self.blob)

    @property
    def diff_id(self) -> str:
        return sha256(self.tar)

    def media_type(self, media: str) -> str:
        return LAYER_TYPES[(media, self.compression)]


@dataclasses.dataclass
class Image:
    """An image: layers (base first), the `config` part of its config, and its platform."""

    layers: list[Layer]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    architecture: str = dataclasses.field(default_factory=lambda: host_arch())
    os: str = "linux"
    variant: str = ""
    media: str = "oci"  # or "docker" (schema 2 media types)
    diff_ids: list[str] | None = None  # override (to make a lying image)

    @property
    def config_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.diff_ids or [layer.diff_id for layer in self.layers],
            },
            "history": [{"created_by": "tests/imagebuild.py"} for _ in self.layers],
        }
        if self.variant:
            doc["variant"] = self.variant
        return json.dumps(doc, sort_keys=True).encode()

    @property
    def image_id(self) -> str:
        """What crib must report as the image id: the config digest."""
        return sha256(self.config_bytes)

    @property
    def manifest_type(self) -> str:
        return OCI_MANIFEST if self.media == "oci" else DOCKER_MANIFEST

    @property
    def manifest_bytes(self) -> bytes:
        config = self.config_bytes
        doc = {
            "schemaVersion": 2,
            "mediaType": self.manifest_type,
            "config": {
                "mediaType": OCI_CONFIG if self.media == "oci" else DOCKER_CONFIG,
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": layer.media_type(self.media),
                    "digest": layer.digest,
                    "size": len(layer.blob),
                }
                for layer in self.layers
            ],
        }
        return json.dumps(doc, indent=2).encode()

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest_bytes)

    def platform(self) -> dict[str, str]:
        plat = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            plat["variant"] = self.variant
        return plat


def index_bytes(images: Sequence[Image], media: str = "oci") -> tuple[bytes, str]:
    """(body, media type) of an index / manifest list over `images`."""
    media_type = OCI_INDEX if media == "oci" else DOCKER_LIST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {
                "mediaType": image.manifest_type,
                "digest": image.manifest_digest,
                "size": len(image.manifest_bytes),
                "platform": image.platform(),
            }
            for image in images
        ],
    }
    return json.dumps(doc, indent=2).encode(), media_type


# --- the rootfs of runnable test images ------------------------------------------------------


@functools.cache
def _busybox_bytes() -> bytes:
    with open(BUSYBOX, "rb") as f:
        return f.read()


def busybox_entries(
    users: Sequence[str] = ("nobody:x:65534:65534:nobody:/nonexistent:/bin/sh",),
    groups: Sequence[str] = ("nogroup:x:65534:",),
) -> list[Entry]:
    """A minimal runnable root filesystem: busybox-static, applet links, /etc/passwd,
    /etc/group, /tmp (1777), /root, /home."""
    passwd = "root:x:0:0:root:/root:/bin/sh\n" + "".join(f"{u}\n" for u in users)
    group = "root:x:0:\n" + "".join(f"{g}\n" for g in groups)
    entries = [
        directory("bin"),
        file("bin/busybox", _busybox_bytes(), mode=0o755),
        *[hardlink(f"bin/{applet}", "bin/busybox") for applet in APPLETS],
        directory("etc"),
        file("etc/passwd", passwd.encode()),
        file("etc/group", group.encode()),
        file("etc/hostname", b"crib-test\n"),
        directory("tmp", mode=0o1777),
        directory("root", mode=0o700),
        directory("home"),
        directory("proc"),
        directory("sys"),
        directory("dev"),
        directory("var"),
        directory("var/tmp", mode=0o1777),
    ]
    return entries


def busybox_layer(compression: str = "gzip") -> Layer:
    """The busybox root filesystem as one layer."""
    return Layer(busybox_entries(), compression)


def busybox_image(
    user: str = "",
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = ("sh",),
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    working_dir: str = "",
    stop_signal: str = "",
    labels: dict[str, str] | None = None,
    users: Sequence[str] = (
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh",
        "app:x:1000:1000:app:/home/app:/bin/sh",
    ),
    groups: Sequence[str] = ("nogroup:x:65534:", "app:x:1000:", "extra:x:2000:app"),
    extra_layers: Sequence[Layer] = (),
    media: str = "oci",
) -> Image:
    """A runnable busybox image with an image config as the container tests need it."""
    config: dict[str, Any] = {"Env": list(env)}
    if user:
        config["User"] = user
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    if working_dir:
        config["WorkingDir"] = working_dir
    if stop_signal:
        config["StopSignal"] = stop_signal
    if labels:
        config["Labels"] = dict(labels)
    layers = [Layer(busybox_entries(users, groups))]
    if any(u.startswith("app:") for u in users):
        layers.append(Layer([directory("home/app", uid=1000, gid=1000)]))
    layers.extend(extra_layers)
    return Image(layers, config=config, media=media)


# --- pushing ---------------------------------------------------------------------------------


class _HasURL(Protocol):
    @property
    def url(self) -> str: ...


class PushError(RuntimeError):
    """The registry refused a push."""


class Pusher:
    """A tiny distribution-spec push client (monolithic blob uploads, basic auth)."""

    def __init__(self, base_url: str, username: str = "", password: str = "") -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers: dict[str, str] = {}
        if username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        if self._request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200:
            return digest
        response = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        if response.status != 202:
            raise PushError(f"start upload to {repo}: HTTP {response.status}")
        location = urllib.parse.urlsplit(response.headers["Location"])
        query = [*urllib.parse.parse_qsl(location.query), ("digest", digest)]
        path = f"{location.path}?{urllib.parse.urlencode(query)}"
        response = self._request("PUT", path, data, {"Content-Type": "application/octet-stream"})
        if response.status != 201:
            raise PushError(f"upload {digest} to {repo}: HTTP {response.status}")
        return digest

    def push_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        response = self._request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type}
        )
        if response.status != 201:
            raise PushError(f"manifest {repo}:{ref}: HTTP {response.status}")
        return sha256(body)


def pusher_for(registry: _HasURL, username: str = "", password: str = "") -> Pusher:
    """A pusher for a tests.registry.Registry (or anything with a `url`)."""
    return Pusher(registry.url, username, password)


def push_image(
    registry: _HasURL | Pusher, repo: str, tag: str | None, image: Image, **auth: str
) -> str:
    """Push `image` as `repo:tag` (or by digest only when tag is None); returns the
    manifest digest."""
    pusher = registry if isinstance(registry, Pusher) else pusher_for(registry, **auth)
    for layer in image.layers:
        pusher.push_blob(repo, layer.blob)
    pusher.push_blob(repo, image.config_bytes)
    body = image.manifest_bytes
    return pusher.push_manifest(repo, tag or sha256(body), body, image.manifest_type)


def push_index(
    registry: _HasURL | Pusher,
    repo: str,
    tag: str,
    images: Sequence[Image],
    media: str = "oci",
    **auth: str,
) -> str:
    """Push every image by digest and an index over them as `repo:tag`; returns its digest."""
    pusher = registry if isinstance(registry, Pusher) else pusher_for(registry, **auth)
    for image in images:
        push_image(pusher, repo, None, image)
    body, media_type = index_bytes(images, media)
    return pusher.push_manifest(repo, tag, body, media_type)


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)
