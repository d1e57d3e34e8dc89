"""The image index: which images exist, under which names, made of which layers.

One JSON file, `<dir>/images.json`, replaced atomically on every change (temp file, fsync,
rename), so after a crash it holds the state before or after the change, never a mix.

    image id     = digest of the image config (image-spec config.md "ImageID"), sha256:<hex>
    repo_tags    = registry/repo:tag names that point at it (a tag points at one image only)
    repo_digests = registry/repo@<digest of the manifest or index that was pulled>

Lookups accept the id (with or without `sha256:`), a unique id prefix of 12+ hex digits,
any repo tag or repo digest, and short names (`busybox` = docker.io/library/busybox:latest).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from common import atomicfile
from image import reference
from image.errors import ImageStoreError, InvalidReferenceError

INDEX_FILE = "images.json"
INDEX_VERSION = 1
_HEX_PREFIX_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{12,64})$")


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image in the index."""

    image_id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size_bytes: int
    diff_ids: tuple[str, ...]
    manifest_digest: str
    user: str
    # Blobs this image keeps in the content store: manifests, index, config.
    content_digests: tuple[str, ...]
    pulled_at_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in doc.items()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageRecord:
        return cls(
            image_id=str(doc["image_id"]),
            repo_tags=tuple(str(t) for t in doc["repo_tags"]),
            repo_digests=tuple(str(d) for d in doc["repo_digests"]),
            size_bytes=int(doc["size_bytes"]),
            diff_ids=tuple(str(d) for d in doc["diff_ids"]),
            manifest_digest=str(doc["manifest_digest"]),
            user=str(doc["user"]),
            content_digests=tuple(str(d) for d in doc["content_digests"]),
            pulled_at_ns=int(doc.get("pulled_at_ns", 0)),
        )


def _add(items: tuple[str, ...], item: str | None) -> tuple[str, ...]:
    return items if item is None or item in items else (*items, item)


class ImageIndex:
    """Images by id, persisted in one file; all methods are synchronous and quick."""

    def __init__(self, dir_path: str) -> None:
        self.dir_path = dir_path
        self.path = os.path.join(dir_path, INDEX_FILE)
        self._images: dict[str, ImageRecord] = {}

    def load(self) -> None:
        """Read the index (a missing file is an empty index)."""
        os.makedirs(self.dir_path, mode=0o700, exist_ok=True)
        atomicfile.sweep_tmp(self.dir_path)
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            self._images = {}
            return
        except ValueError as err:
            raise ImageStoreError(f"{self.path}: not JSON: {err}") from None
        if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise ImageStoreError(
                f"{self.path}: unknown version {version!r} (this crib reads version"
                f" {INDEX_VERSION})"
            )
        try:
            images = [ImageRecord.from_json(d) for d in doc["images"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ImageStoreError(f"{self.path}: bad image entry: {err!r}") from None
        self._images = {image.image_id: image for image in images}

    def _save(self, images: dict[str, ImageRecord]) -> None:
        doc = {
            "version": INDEX_VERSION,
            "images": [images[k].to_json() for k in sorted(images)],
        }
        atomicfile.write_json(self.path, doc, mode=0o600)
        self._images = images

    def get(self, image_id: str) -> ImageRecord | None:
        """The image with exactly this id."""
        return self._images.get(image_id)

    def all(self) -> list[ImageRecord]:
        """Every image, ordered by id."""
        return [self._images[k] for k in sorted(self._images)]

    def lookup(self, name: str) -> ImageRecord | None:
        """The image `name` refers to: id, id prefix, repo tag or repo digest.

        Raises InvalidReferenceError when `name` is none of these forms.
        """
        if name.startswith("sha256:") and name in self._images:
            return self._images[name]
        if f"sha256:{name}" in self._images:
            return self._images[f"sha256:{name}"]
        prefix = _HEX_PREFIX_RE.match(name)
        try:
            ref = reference.parse(name)
        except InvalidReferenceError:
            if prefix is None:
                raise
            ref = None
        if ref is not None:
            for image in self._images.values():
                if ref.digest is not None:
                    if ref.with_digest(ref.digest) in image.repo_digests:
                        return image
                elif ref.tagged() in image.repo_tags:
                    return image
        if prefix is not None:
            matches = [i for k, i in self._images.items() if k[7:].startswith(prefix.group(1))]
            if len(matches) == 1:
                return matches[0]
        return None

    def put(self, record: ImageRecord, tag: str | None, repo_digest: str) -> ImageRecord:
        """Add or update an image, naming it `tag` (taken from any other image that had
        it) and `repo_digest`; returns the stored record."""
        images = dict(self._images)
        if tag is not None:
            for image_id, other in images.items():
                if image_id != record.image_id and tag in other.repo_tags:
                    images[image_id] = dataclasses.replace(
                        other, repo_tags=tuple(t for t in other.repo_tags if t != tag)
                    )
        old = images.get(record.image_id)
        if old is not None:
            record = dataclasses.replace(
                old,
                repo_tags=_add(old.repo_tags, tag),
                repo_digests=_add(old.repo_digests, repo_digest),
                content_digests=tuple(dict.fromkeys(old.content_digests + record.content_digests)),
                pulled_at_ns=record.pulled_at_ns,
            )
        else:
            record = dataclasses.replace(
                record, repo_tags=_add((), tag), repo_digests=_add((), repo_digest)
            )
        images[record.image_id] = record
        self._save(images)
        return record

    def remove(self, image_id: str) -> ImageRecord | None:
        """Remove an image from the index; returns what was removed."""
        if image_id not in self._images:
            return None
        images = dict(self._images)
        removed = images.pop(image_id)
        self._save(images)
        return removed
