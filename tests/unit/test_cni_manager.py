"""The CNI manager: which network, attach/detach with the cache, readiness, GC."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib

import pytest

from cni import config as cniconfig
from cni.errors import CniNotReadyError, CniPluginError
from cni.manager import Bandwidth, CniManager, PodNetwork, PortMapping
from tests.fakes.cni import FakePluginExec, make_bin_dir

PLUGINS = ("bridge", "host-local", "portmap", "loopback", "bandwidth")


def write_conflist(conf_dir: pathlib.Path, name: str, file_name: str = "10-x.conflist") -> None:
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / file_name).write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": name,
                "plugins": [
                    {"type": "bridge", "bridge": "cpod9", "ipam": {"type": "host-local"}},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    {"type": "bandwidth", "capabilities": {"bandwidth": True}},
                ],
            }
        )
    )


@pytest.fixture
def setup(tmp_path: pathlib.Path) -> tuple[CniManager, FakePluginExec, pathlib.Path]:
    fake = FakePluginExec()
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    manager = CniManager(
        conf_dir=str(conf_dir),
        bin_dirs=[make_bin_dir(str(tmp_path / "bin"), *PLUGINS)],
        default_network=cniconfig.default_network("cpod-default", "10.123.200.0/24"),
        cache_dir=str(tmp_path / "cache"),
        plugin_exec=fake,
        plugin_timeout_s=5.0,
    )
    return manager, fake, conf_dir


def pod(sandbox_id: str = "sb1", **extra: object) -> PodNetwork:
    values: dict[str, object] = {
        "sandbox_id": sandbox_id,
        "pod_name": "web",
        "pod_namespace": "default",
        "pod_uid": "uid-1",
        "netns": f"/run/crib/ns/net/{sandbox_id}",
        **extra,
    }
    return PodNetwork(**values)  # type: ignore[arg-type]


def test_default_network_when_conf_dir_empty_then_reread_on_change(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, _, conf_dir = setup
    choice = manager.network()
    assert not choice.from_conf_dir
    assert choice.network.name == "crib"
    assert os.listdir(conf_dir) == []  # crib writes nothing there
    write_conflist(conf_dir, "first")
    assert manager.network().network.name == "first"
    write_conflist(conf_dir, "second")  # same file, new content
    assert manager.network().network.name == "second"
    write_conflist(conf_dir, "earlier", "05-a.conflist")
    assert manager.network().network.name == "earlier"
    for name in os.listdir(conf_dir):
        os.unlink(conf_dir / name)
    assert manager.network().network.name == "crib"


def test_setup_runs_loopback_then_the_list_with_crio_cni_args(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    write_conflist(conf_dir, "cpod-net")
    attachment = asyncio.run(
        manager.setup(
            pod(
                port_mappings=(
                    PortMapping(8080, 80, "tcp", "127.0.0.1"),
                    PortMapping(0, 53, "udp"),  # no hostPort: not a mapping for portmap
                ),
                bandwidth=Bandwidth(ingress_rate_bps=10_000_000),
                pod_annotations={"a": "b"},
            )
        )
    )
    assert fake.commands() == [
        ("loopback", "ADD"),
        ("bridge", "ADD"),
        ("portmap", "ADD"),
        ("bandwidth", "ADD"),
    ]
    loopback, bridge, portmap, bandwidth = fake.calls
    assert loopback.env["CNI_IFNAME"] == "lo"
    assert bridge.env["CNI_IFNAME"] == "eth0"
    assert bridge.env["CNI_ARGS"] == (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
        "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"
    )
    assert portmap.conf["runtimeConfig"] == {
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}
        ]
    }
    rates = bandwidth.conf["runtimeConfig"]["bandwidth"]
    assert rates["ingressRate"] == 10_000_000
    assert rates["ingressBurst"] > 0
    assert "egressRate" not in rates
    assert attachment.result is not None
    assert attachment.network.name == "cpod-net"
    # The cache holds what a DEL needs, even after the conf dir changes.
    cached = manager.cache.for_container("sb1")
    assert [a.result for a in cached] == [attachment.result]


def test_failed_add_leaves_a_cache_entry_that_teardown_uses(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    write_conflist(conf_dir, "cpod-net")
    fake.fail[("portmap", "ADD")] = (7, "invalid config", "")
    with pytest.raises(CniPluginError):
        asyncio.run(manager.setup(pod()))
    [entry] = manager.cache.for_container("sb1")
    assert entry.result is None
    fake.calls.clear()
    write_conflist(conf_dir, "changed-meanwhile")
    asyncio.run(manager.teardown("sb1", None, "/run/crib/ns/net/sb1"))
    dels = [c for c in fake.calls if c.plugin != "loopback"]
    assert [(c.plugin, c.command) for c in dels] == [
        ("bandwidth", "DEL"),
        ("portmap", "DEL"),
        ("bridge", "DEL"),
    ]
    assert all(c.conf["name"] == "cpod-net" for c in dels)  # the config it was added with
    assert all("prevResult" not in c.conf for c in dels)  # no result was cached
    assert manager.cache.for_container("sb1") == []


def test_teardown_without_netns_skips_loopback_and_keeps_going(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    write_conflist(conf_dir, "cpod-net")
    attachment = asyncio.run(manager.setup(pod()))
    fake.calls.clear()
    asyncio.run(manager.teardown("sb1", attachment, ""))
    assert [c.plugin for c in fake.calls] == ["bandwidth", "portmap", "bridge"]
    assert all(c.env["CNI_NETNS"] == "" for c in fake.calls)
    assert all(c.conf["prevResult"] == attachment.result for c in fake.calls)
    assert manager.cache.for_container("sb1") == []


def test_failed_del_keeps_the_cache_entry_for_a_retry(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    write_conflist(conf_dir, "cpod-net")
    attachment = asyncio.run(manager.setup(pod()))
    fake.fail[("bridge", "DEL")] = (5, "busy", "")
    with pytest.raises(CniPluginError):
        asyncio.run(manager.teardown("sb1", attachment, "/ns"))
    assert len(manager.cache.for_container("sb1")) == 1
    del fake.fail[("bridge", "DEL")]
    asyncio.run(manager.teardown("sb1", attachment, "/ns"))
    assert manager.cache.for_container("sb1") == []


def test_gc_deletes_attachments_of_sandboxes_that_are_gone(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    write_conflist(conf_dir, "cpod-net")
    for sandbox_id in ("live", "leaked"):
        asyncio.run(manager.setup(pod(sandbox_id)))
    fake.calls.clear()
    released = asyncio.run(manager.gc({"live"}))
    assert [a.container_id for a in released] == ["leaked"]
    assert {c.env["CNI_CONTAINERID"] for c in fake.calls} == {"leaked"}
    assert {c.command for c in fake.calls} == {"DEL"}
    assert [a.container_id for a in manager.cache.entries()] == ["live"]


def test_readiness_names_missing_plugins(
    tmp_path: pathlib.Path, setup: tuple[CniManager, FakePluginExec, pathlib.Path]
) -> None:
    manager, _, conf_dir = setup
    assert asyncio.run(manager.status()).ready
    (conf_dir / "10-x.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "nosuch"}]})
    )
    ready = asyncio.run(manager.status())
    assert not ready.ready
    assert ready.reason == "NetworkPluginNotReady"
    assert "nosuch" in ready.message
    with pytest.raises(CniNotReadyError):
        asyncio.run(manager.setup(pod()))


def test_status_of_1_1_0_network_asks_the_plugins(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    (conf_dir / "10-x.conflist").write_text(
        json.dumps({"cniVersion": "1.1.0", "name": "x", "plugins": [{"type": "bridge"}]})
    )
    fake.versions["bridge"] = ["1.0.0", "1.1.0"]
    fake.fail[("bridge", "STATUS")] = (50, "plugin not available", "no uplink")
    ready = asyncio.run(manager.status())
    assert not ready.ready
    assert "no uplink" in ready.message


def test_broken_files_are_not_replaced_by_the_default_network(
    setup: tuple[CniManager, FakePluginExec, pathlib.Path],
) -> None:
    manager, fake, conf_dir = setup
    (conf_dir / "10-broken.conflist").write_text("{not json")
    ready = manager.readiness()
    assert not ready.ready
    assert "10-broken.conflist" in ready.message
    with pytest.raises(CniNotReadyError, match=r"10-broken\.conflist"):
        asyncio.run(manager.setup(pod()))
    assert fake.calls == []
    write_conflist(conf_dir, "fixed", "20-fixed.conflist")
    assert manager.network().network.name == "fixed"
    assert manager.network().skipped  # the broken file is still reported
