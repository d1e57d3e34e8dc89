"""Image references: docker-style normalization and the errors for bad ones."""

from __future__ import annotations

import pytest

from image import reference
from image.errors import InvalidReferenceError

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("user/app", "docker.io/user/app:latest"),
        ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}"),
        ("Registry.Example/app", "Registry.Example/app:latest"),  # upper case => a host
        ("a_b__c-d/x.y", "docker.io/a_b__c-d/x.y:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ],
)
def test_normalize(text: str, normalized: str) -> None:
    assert reference.normalize(text) == normalized


def test_parts() -> None:
    ref = reference.parse(f"127.0.0.1:5000/team/app:v2@{D}")
    assert ref.domain == "127.0.0.1:5000"
    assert ref.path == "team/app"
    assert ref.tag == "v2"
    assert ref.digest == D
    assert ref.object == D  # the digest decides what is fetched
    assert ref.tagged() == "127.0.0.1:5000/team/app:v2"
    assert ref.with_digest(D) == f"127.0.0.1:5000/team/app@{D}"
    assert reference.parse("busybox@" + D).tagged() is None


def test_familiar() -> None:
    assert reference.familiar(reference.parse("busybox")) == "busybox:latest"
    assert reference.familiar(reference.parse("quay.io/x/y:1")) == "quay.io/x/y:1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("docker.io/Library/busybox", "lowercase"),
        ("busybox:", "bad tag"),
        ("busybox:-x", "bad tag"),
        ("busybox:" + "t" * 129, "bad tag"),
        ("busy box", "white space"),
        ("busybox@sha256:abc", "64 lower-case hex"),
        ("busybox@md5:" + "a" * 32, "want sha256"),
        ("a" * 64, "image id"),
        ("quay.io//x", "bad repository name"),
        ("quay.io/x/", "bad repository name"),
        ("-bad.example/x", "bad registry host"),
        ("x/" + "a" * 300, "longer than 255"),
        ("busybox/../etc", "bad repository name"),
    ],
)
def test_invalid_reference_names_it(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        reference.parse(text)
    assert fragment in str(err.value)
    if text:
        assert repr(text) in str(err.value) or text in str(err.value)


def test_split_domain() -> None:
    assert reference.split_domain("busybox") == ("docker.io", "library/busybox")
    assert reference.split_domain("foo.bar/x") == ("foo.bar", "x")
    assert reference.split_domain("foo/x") == ("docker.io", "foo/x")
