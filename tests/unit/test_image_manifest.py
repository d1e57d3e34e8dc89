"""Manifests, indexes, configs and platform selection."""

from __future__ import annotations

import json

import pytest

from image import manifest
from image.errors import ManifestError, PlatformNotFoundError
from image.manifest import Index, Manifest, Platform
from tests import imagebuild as ib

D = "sha256:" + "b" * 64


def _manifest_doc(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": manifest.OCI_MANIFEST,
        "config": {"mediaType": manifest.OCI_CONFIG, "digest": D, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 5}
        ],
    }
    doc.update(over)
    return doc


def test_oci_and_docker_manifests_parse() -> None:
    for media in ("oci", "docker"):
        image = ib.busybox_image(media=media)
        doc = manifest.parse_document(image.manifest_bytes, image.manifest_type, "x")
        assert isinstance(doc, Manifest)
        assert doc.config.digest == image.image_id
        assert [layer.digest for layer in doc.layers] == [lay.digest for lay in image.layers]


def test_content_type_parameters_ignored() -> None:
    body = json.dumps(_manifest_doc()).encode()
    doc = manifest.parse_document(body, manifest.OCI_MANIFEST + "; charset=utf-8", "x")
    assert isinstance(doc, Manifest)


def test_media_type_must_match_content_type() -> None:
    body = json.dumps(_manifest_doc()).encode()
    with pytest.raises(ManifestError, match="differs from Content-Type"):
        manifest.parse_document(body, manifest.OCI_INDEX, "ref")


def test_manifests_and_layers_together_refused() -> None:
    doc = _manifest_doc(manifests=[])
    del doc["mediaType"]
    with pytest.raises(ManifestError, match="both manifests and layers"):
        manifest.parse_document(json.dumps(doc).encode(), "application/json", "ref")


def test_media_type_omitted_is_inferred() -> None:
    doc = _manifest_doc()
    del doc["mediaType"]
    parsed = manifest.parse_document(json.dumps(doc).encode(), "", "x")
    assert isinstance(parsed, Manifest)
    index = {"schemaVersion": 2, "manifests": []}
    assert isinstance(manifest.parse_document(json.dumps(index).encode(), "", "x"), Index)


def test_schema1_refused() -> None:
    body = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(ManifestError, match="schema 1"):
        manifest.parse_document(body, manifest.DOCKER_SCHEMA1[0], "ref")


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        ({"config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}, "config.digest"),
        ({"config": {"mediaType": "x", "digest": D, "size": -1}}, "config.size"),
        ({"layers": "nope"}, "without a layers list"),
        ({"schemaVersion": 3}, "schemaVersion"),
    ],
)
def test_bad_manifest_names_field(mutation: dict[str, object], fragment: str) -> None:
    body = json.dumps(_manifest_doc(**mutation)).encode()
    with pytest.raises(ManifestError, match=fragment):
        manifest.parse_document(body, manifest.OCI_MANIFEST, "ref")


def test_not_json() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        manifest.parse_document(b"<html>", "text/html", "ref")


def test_layer_compression() -> None:
    desc = manifest.Descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", D, 1)
    assert manifest.layer_compression(desc) == "gzip"
    zstd = manifest.Descriptor("application/vnd.oci.image.layer.v1.tar+zstd", D, 1)
    assert manifest.layer_compression(zstd) == "zstd"
    with pytest.raises(ManifestError, match="encrypted"):
        manifest.layer_compression(
            manifest.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", D, 1)
        )
    with pytest.raises(ManifestError, match="unsupported layer media type"):
        manifest.layer_compression(manifest.Descriptor("application/x-foo", D, 1))


def test_config_parse() -> None:
    image = ib.busybox_image(user="1000:1000")
    config = manifest.parse_config(image.config_bytes, "x")
    assert config.user == "1000:1000"
    assert config.diff_ids == tuple(layer.diff_id for layer in image.layers)
    with pytest.raises(ManifestError, match=r"rootfs\.diff_ids"):
        manifest.parse_config(json.dumps({"rootfs": {"diff_ids": "x"}}).encode(), "x")
    with pytest.raises(ManifestError, match="rootfs"):
        manifest.parse_config(b"{}", "x")


def test_chain_ids() -> None:
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    chain = manifest.chain_ids([a, b])
    assert chain[0] == a
    assert chain[1] == manifest.digest_of(f"{a} {b}".encode())


def _index(*platforms: tuple[str, str, str]) -> Index:
    return Index(
        manifest.OCI_INDEX,
        tuple(
            manifest.Descriptor(manifest.OCI_MANIFEST, f"sha256:{i:064x}", 1, Platform(*p))
            for i, p in enumerate(platforms)
        ),
    )


def test_select_platform() -> None:
    index = _index(("linux", "arm64", "v8"), ("linux", "amd64", ""), ("windows", "amd64", ""))
    assert manifest.select_manifest(index, Platform("linux", "amd64"), "x").digest.endswith("1")
    assert manifest.select_manifest(index, Platform("linux", "arm64", "v8"), "x").digest.endswith(
        "0"
    )


def test_select_arm_variant_prefers_newest_runnable() -> None:
    index = _index(("linux", "arm", "v5"), ("linux", "arm", "v7"), ("linux", "arm", "v6"))
    host = Platform("linux", "arm", "v7")
    assert manifest.select_manifest(index, host, "x").digest.endswith("1")
    v6_host = Platform("linux", "arm", "v6")
    assert manifest.select_manifest(index, v6_host, "x").digest.endswith("2")


def test_no_platform_names_what_index_has() -> None:
    index = _index(("linux", "s390x", ""), ("unknown", "unknown", ""))
    with pytest.raises(PlatformNotFoundError) as err:
        manifest.select_manifest(index, Platform("linux", "amd64"), "ref")
    assert "linux/s390x" in str(err.value)
    assert "linux/amd64" in str(err.value)


def test_host_platform_is_linux() -> None:
    plat = manifest.host_platform()
    assert plat.os == "linux"
    assert plat.architecture == ib.host_arch()
