"""Errors raised while turning a CRI container config into an OCI runtime spec.

    DomainError
     └── SpecError                                   (kind = INTERNAL)
          ├── SpecInvalidError       + InvalidArgumentError     the request is unusable as given
          │    ├── UserNotFoundError                           a user/group is not in the image
          │    ├── ImageUserFileError                          /etc/passwd or /etc/group unusable
          │    └── SeccompProfileError                         a seccomp profile missing/malformed
          ├── SpecUnsupportedError   + UnimplementedError       this host/runtime lacks the feature
          ├── SpecPreconditionError  + FailedPreconditionError  the host is not set up for it
          └── SpecInputError         + InternalError            crib's caller left inputs out

Messages are lowercase, carry no trailing period and name the field and value at fault.
"""

from __future__ import annotations

from common.errors import (
    DomainError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    UnimplementedError,
)


class SpecError(DomainError):
    """Root of every error `cri.specgen` raises."""


class SpecInvalidError(SpecError, InvalidArgumentError):
    """A field of the ContainerConfig (or the image config) cannot be honoured as given."""


class UserNotFoundError(SpecInvalidError):
    """A user or group name does not exist in the image's /etc/passwd or /etc/group."""


class ImageUserFileError(SpecInvalidError):
    """The image's /etc/passwd or /etc/group is not a regular file, escapes, or is too large."""


class SeccompProfileError(SpecInvalidError):
    """A seccomp profile cannot be read or does not describe a valid filter."""


class SpecUnsupportedError(SpecError, UnimplementedError):
    """The request needs a feature this host or runtime handler does not have."""


class SpecPreconditionError(SpecError, FailedPreconditionError):
    """The host is not in the state the request needs (e.g. a mount that is not shared)."""


class SpecInputError(SpecError, InternalError):
    """crib's caller left out something the spec needs (a namespace pin, an image volume path)."""
