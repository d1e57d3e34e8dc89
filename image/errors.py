"""Image errors.

DomainError
 └── ImageError
      ├── InvalidReferenceError    INVALID_ARGUMENT     a reference cannot be parsed
      ├── InvalidCredentialsError  INVALID_ARGUMENT     credentials cannot be decoded
      ├── ImageNotFoundError       NOT_FOUND            no such image in the local store
      ├── RemoteNotFoundError      NOT_FOUND            no such manifest or blob remotely
      ├── PlatformNotFoundError    NOT_FOUND            no manifest for this host's platform
      ├── RegistryAuthError        FAILED_PRECONDITION  credentials refused
      ├── RegistryError            FAILED_PRECONDITION  an unusable registry answer
      ├── ManifestError            FAILED_PRECONDITION  a bad manifest, index or config
      ├── DigestMismatchError      FAILED_PRECONDITION  content differs from digest/size
      ├── UnsafeLayerError         FAILED_PRECONDITION  a layer writes outside its dir
      ├── LayerFormatError         FAILED_PRECONDITION  a layer is not a readable tar
      ├── RegistryUnavailableError UNAVAILABLE          unreachable after bounded retries
      ├── PullStalledError         DEADLINE_EXCEEDED    no bytes for the progress timeout
      └── ImageStoreError          INTERNAL             the store on disk is unusable
"""

from __future__ import annotations

from common.errors import (
    DeadlineExceededError,
    DomainError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)


class ImageError(DomainError):
    """Root of image errors."""


class InvalidReferenceError(ImageError, InvalidArgumentError):
    """An image reference (name, tag, digest) is malformed."""


class ImageNotFoundError(ImageError, NotFoundError):
    """No local image matches the given id, tag or digest."""


class RemoteNotFoundError(ImageError, NotFoundError):
    """The registry (and every mirror) answered 404 for a manifest or blob."""


class RegistryAuthError(ImageError, FailedPreconditionError):
    """The registry answered 401/403 even with the credentials crib had."""


class RegistryError(ImageError, FailedPreconditionError):
    """The registry answered with a status or body crib cannot use."""


class RegistryUnavailableError(ImageError, UnavailableError):
    """No endpoint for the registry could be reached after bounded retries."""


class PullStalledError(ImageError, DeadlineExceededError):
    """A download received no bytes for the configured progress timeout."""


class ManifestError(ImageError, FailedPreconditionError):
    """A manifest, index or image config is malformed or of an unsupported type."""


class PlatformNotFoundError(ImageError, NotFoundError):
    """An image index lists no manifest for this host's platform."""


class DigestMismatchError(ImageError, FailedPreconditionError):
    """Downloaded or unpacked content does not match its digest or size."""


class UnsafeLayerError(ImageError, FailedPreconditionError):
    """A layer entry would write outside the layer directory or through a link."""


class LayerFormatError(ImageError, FailedPreconditionError):
    """A layer blob is not a readable tar (or its compression is corrupt)."""


class ImageStoreError(ImageError, InternalError):
    """The image store on disk is unreadable or of an unknown version."""


class InvalidCredentialsError(ImageError, InvalidArgumentError):
    """The credentials in a request cannot be decoded."""
