"""CNI network discovery: libcni's file order, skipping invalid files, the default network."""

from __future__ import annotations

import json
import pathlib
import stat

import pytest

from cni import config as cniconfig
from cni.errors import CniConfigError


def conflist(name: str, *types: str) -> str:
    return json.dumps(
        {"cniVersion": "1.0.0", "name": name, "plugins": [{"type": t} for t in types]}
    )


def test_first_valid_file_in_lexicographic_order(tmp_path: pathlib.Path) -> None:
    (tmp_path / "20-b.conflist").write_text(conflist("b", "bridge"))
    (tmp_path / "10-a.conflist").write_text("{broken")
    (tmp_path / "05-ignored.txt").write_text(conflist("txt", "bridge"))
    (tmp_path / "30-c.conf").write_text(
        json.dumps({"cniVersion": "0.4.0", "name": "c", "type": "ptp"})
    )
    found = cniconfig.discover(str(tmp_path))
    assert found.network is not None
    assert found.network.name == "b"
    assert len(found.skipped) == 1
    assert "10-a.conflist" in found.skipped[0]


def test_single_plugin_conf_is_a_list_of_one(tmp_path: pathlib.Path) -> None:
    (tmp_path / "10-c.conf").write_text(
        json.dumps(
            {"cniVersion": "0.4.0", "name": "c", "type": "ptp", "ipam": {"type": "host-local"}}
        )
    )
    net = cniconfig.load_file(str(tmp_path / "10-c.conf"))
    assert net.plugin_types() == ["ptp"]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}, "missing 'name'"),
        ({"name": "x", "plugins": [{"type": "bridge"}]}, "missing 'cniVersion'"),
        ({"cniVersion": "1.0.0", "name": "x", "plugins": []}, "non-empty list"),
        ({"cniVersion": "1.0.0", "name": "x", "plugins": [{}]}, "plugins[0] has no 'type'"),
        ({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../sh"}]}, "is not a name"),
    ],
)
def test_invalid_lists_are_named(tmp_path: pathlib.Path, doc: object, problem: str) -> None:
    path = tmp_path / "10-x.conflist"
    path.write_text(json.dumps(doc))
    with pytest.raises(CniConfigError) as err:
        cniconfig.load_file(str(path))
    assert problem in str(err.value)
    assert str(path) in str(err.value)


def test_empty_or_missing_dir_has_no_network(tmp_path: pathlib.Path) -> None:
    assert cniconfig.discover(str(tmp_path)).network is None
    assert cniconfig.discover(str(tmp_path / "absent")).network is None


def test_default_network_shape() -> None:
    net = cniconfig.default_network("crib0", "10.88.0.0/16")
    assert net.plugin_types() == ["bridge", "portmap"]
    bridge = net.plugins[0]
    assert bridge["bridge"] == "crib0"
    assert bridge["isGateway"] is True
    assert bridge["ipMasq"] is True
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.88.0.0/16"}]]
    assert net.plugins[1]["capabilities"] == {"portMappings": True}


def make_plugin(bin_dir: pathlib.Path, name: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_missing_plugins_include_ipam_and_loopback(tmp_path: pathlib.Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    make_plugin(first, "bridge")
    make_plugin(second, "portmap")
    net = cniconfig.default_network("crib0", "10.88.0.0/16")
    assert cniconfig.missing_plugins(net, [str(first), str(second)]) == ["loopback", "host-local"]
    make_plugin(second, "loopback")
    make_plugin(first, "host-local")
    assert cniconfig.missing_plugins(net, [str(first), str(second)]) == []
    assert cniconfig.find_plugin("portmap", [str(first), str(second)]) == str(second / "portmap")
