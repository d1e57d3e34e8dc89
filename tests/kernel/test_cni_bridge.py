"""The CNI manager with the real Debian plugins (bridge, host-local, loopback) on network
namespaces made by the test (`ip netns add cpod-...`): ADD, CHECK, DEL, DEL after the netns
is gone, and GC of a leaked attachment. No daemon, no runtime."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from cni import config as cniconfig
from cni.errors import CniPluginError
from cni.invoke import SubprocessPluginExec
from cni.manager import CniManager, PodNetwork
from tests.leakcheck import no_leaks  # noqa: F401 - module-wide leak check

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_leaks")]

BIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


class Net:
    def __init__(self, tmp: pathlib.Path) -> None:
        suffix = secrets.token_hex(4)
        self.name = f"cpod-{suffix}"
        self.bridge = f"cpod{suffix}"
        self.prefix = f"10.123.{secrets.randbelow(250) + 1}"
        self.data_dir = tmp / "ipam"
        self.conf_dir = tmp / "net.d"
        self.conf_dir.mkdir()
        (self.conf_dir / "10-cpod.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": self.name,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.bridge,
                            "isGateway": False,
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": f"{self.prefix}.0/24"}]],
                                "dataDir": str(self.data_dir),
                            },
                        }
                    ],
                }
            )
        )
        self.manager = CniManager(
            conf_dir=str(self.conf_dir),
            bin_dirs=BIN_DIRS,
            default_network=cniconfig.default_network("cpod-unused", "10.123.254.0/24"),
            cache_dir=str(tmp / "cache"),
            plugin_exec=SubprocessPluginExec(),
            plugin_timeout_s=30,
        )

    def leases(self) -> list[str]:
        path = self.data_dir / self.name
        return (
            sorted(p.name for p in path.iterdir() if p.name[0].isdigit()) if path.is_dir() else []
        )


@pytest.fixture
def net(tmp_path: pathlib.Path) -> Iterator[Net]:
    net = Net(tmp_path)
    try:
        yield net
    finally:
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"cpod-{secrets.token_hex(4)}"
    run("ip", "netns", "add", name)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def pod(sandbox_id: str, netns: str) -> PodNetwork:
    return PodNetwork(sandbox_id, "web", "cpod-test", "uid-1", netns)


def test_add_check_del(net: Net, netns: str) -> None:
    sandbox_id = secrets.token_hex(8)
    attachment = asyncio.run(net.manager.setup(pod(sandbox_id, netns)))
    assert attachment.result is not None
    [ip] = [str(i["address"]) for i in attachment.result["ips"]]
    assert ip.startswith(net.prefix)
    addrs = run("ip", "-n", os.path.basename(netns), "-o", "addr")
    assert any(line.split()[1] == "eth0" and ip in line for line in addrs.splitlines())
    assert "127.0.0.1/8" in addrs  # the loopback plugin brought lo up
    assert net.leases() == [ip.split("/")[0]]
    assert asyncio.run(net.manager.check(attachment, netns))
    # Take the address away behind the plugin's back: CHECK reports it, with the plugin's words.
    run("ip", "-n", os.path.basename(netns), "addr", "del", ip, "dev", "eth0")
    with pytest.raises(CniPluginError) as err:
        asyncio.run(net.manager.check(attachment, netns))
    assert err.value.plugin == "bridge"
    assert err.value.command == "CHECK"
    asyncio.run(net.manager.teardown(sandbox_id, attachment, netns))
    assert net.leases() == []
    assert os.listdir(f"/sys/class/net/{net.bridge}/brif") == []
    assert net.manager.cache.entries() == []


def test_del_after_the_netns_is_gone_still_frees_the_ip(net: Net) -> None:
    name = f"cpod-{secrets.token_hex(4)}"
    run("ip", "netns", "add", name)
    try:
        sandbox_id = secrets.token_hex(8)
        asyncio.run(net.manager.setup(pod(sandbox_id, f"/var/run/netns/{name}")))
        assert len(net.leases()) == 1
    finally:
        run("ip", "netns", "del", name)  # the veth goes with it, the lease does not
    assert len(net.leases()) == 1
    asyncio.run(net.manager.teardown(sandbox_id, None, ""))
    assert net.leases() == []


def test_gc_releases_what_no_sandbox_holds(net: Net, netns: str) -> None:
    live, leaked = secrets.token_hex(8), secrets.token_hex(8)
    asyncio.run(net.manager.setup(pod(live, netns)))
    other = f"cpod-{secrets.token_hex(4)}"
    run("ip", "netns", "add", other)
    try:
        asyncio.run(net.manager.setup(pod(leaked, f"/var/run/netns/{other}")))
        assert len(net.leases()) == 2
        released = asyncio.run(net.manager.gc({live}))
        assert [a.container_id for a in released] == [leaked]
        assert len(net.leases()) == 1
        assert "eth0" not in run("ip", "-n", other, "-o", "link")
    finally:
        run("ip", "netns", "del", other)
    asyncio.run(net.manager.teardown(live, None, netns))
    assert net.leases() == []
