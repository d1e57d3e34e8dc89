"""Docker-style image references: parse, normalize, print.

    busybox                    -> docker.io/library/busybox:latest
    quay.io/coreos/etcd:v3     -> quay.io/coreos/etcd:v3
    localhost:5000/app@sha256:… -> localhost:5000/app@sha256:…   (no tag added)
    app:v1@sha256:…            -> docker.io/library/app:v1@sha256:… (the digest decides)

The grammar and the normalization follow distribution/reference (`ParseNormalizedNamed`):
the first path component is a registry host when it contains "." or ":", is "localhost",
or has upper-case letters; otherwise the registry is docker.io, and a single-component
docker.io name gets "library/". `index.docker.io` is an alias of `docker.io`.
"""

from __future__ import annotations

import dataclasses
import re

from image.errors import InvalidReferenceError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# distribution/reference caps the whole name (domain + "/" + path) at 255 characters.
NAME_MAX_LEN = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# Digest algorithms crib can verify, with the length of their hex encoding.
DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
IMAGE_ID_RE = re.compile(r"^[a-f0-9]{64}$")


def check_digest(digest: str, what: str = "digest") -> str:
    """Return `digest` if it is `algorithm:hex` with an algorithm crib can verify."""
    algorithm, sep, encoded = digest.partition(":")
    want = DIGEST_HEX_LEN.get(algorithm)
    if not sep or want is None:
        raise InvalidReferenceError(f"{what} {digest!r}: want sha256:<64 hex> (or sha384/sha512)")
    if len(encoded) != want or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidReferenceError(f"{what} {digest!r}: want {want} lower-case hex digits")
    return digest


@dataclasses.dataclass(frozen=True)
class Reference:
    """A normalized image reference: `domain/path[:tag][@digest]`."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name including the registry: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def tagged(self) -> str | None:
        """`name:tag`, the form of a CRI repo_tag, or None without a tag."""
        return f"{self.name}:{self.tag}" if self.tag is not None else None

    def with_digest(self, digest: str) -> str:
        """`name@digest`, the form of a CRI repo_digest."""
        return f"{self.name}@{digest}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG


def split_domain(name: str) -> tuple[str, str]:
    """Split a (not yet normalized) repository name into registry host and path."""
    first, sep, rest = name.partition("/")
    if not sep or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalize a reference; a reference with neither tag nor digest gets
    `:latest` when `default_tag`. Raises `InvalidReferenceError` naming the reference."""
    if not text:
        raise InvalidReferenceError("image reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReferenceError(f"image reference {text!r}: contains white space")
    if IMAGE_ID_RE.match(text):
        raise InvalidReferenceError(
            f"image reference {text!r}: a 64-hex string is an image id, not a repository name"
        )
    remainder, at, digest = text.partition("@")
    if at:
        check_digest(digest, f"image reference {text!r}: digest")
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    tag: str | None = None
    name = remainder
    if colon > slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(
                f"image reference {text!r}: bad tag {tag!r} (want [A-Za-z0-9_][A-Za-z0-9_.-]"
                "{0,127})"
            )
    domain, path = split_domain(name)
    if path.lower() != path:
        raise InvalidReferenceError(
            f"image reference {text!r}: repository name {path!r} must be lowercase"
        )
    if not DOMAIN_RE.match(domain):
        raise InvalidReferenceError(f"image reference {text!r}: bad registry host {domain!r}")
    if not PATH_RE.match(path):
        raise InvalidReferenceError(f"image reference {text!r}: bad repository name {path!r}")
    if len(domain) + 1 + len(path) > NAME_MAX_LEN:
        raise InvalidReferenceError(
            f"image reference {text!r}: name longer than {NAME_MAX_LEN} characters"
        )
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest if at else None)


def normalize(text: str) -> str:
    """The normalized string form of `text` (`busybox` -> `docker.io/library/busybox:latest`)."""
    return str(parse(text))


def familiar(ref: Reference) -> str:
    """The short form people type (`busybox:latest`), for log lines."""
    name = ref.name
    if ref.domain == DEFAULT_DOMAIN:
        name = ref.path.removeprefix(OFFICIAL_REPO_PREFIX)
    return str(dataclasses.replace(ref, domain="", path=name)).lstrip("/")
