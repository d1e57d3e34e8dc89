"""Network list operations as libcni performs them, on a recording fake PluginExec, plus the
real subprocess exec (error decoding, timeouts) with small shell-script plugins."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import time

import pytest

from cni import config as cniconfig
from cni.errors import CniPluginError, CniTimeoutError, CniTryAgainError
from cni.invoke import SubprocessPluginExec, decode_error
from cni.network import NetworkInvoker, RuntimeConf, plugin_config
from tests.fakes.cni import FakePluginExec, make_bin_dir


def network(version: str = "1.0.0", **extra: object) -> cniconfig.NetworkConfig:
    doc = {
        "cniVersion": version,
        "name": "cpod-net",
        "plugins": [
            {"type": "bridge", "bridge": "cpod0", "ipam": {"type": "host-local"}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
        **extra,
    }
    return cniconfig.parse(doc, "test", single_plugin=False)


RT = RuntimeConf(
    container_id="sb1",
    netns="/run/crib/ns/net/sb1",
    ifname="eth0",
    args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
    capability_args={
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000},
        "mac": "ignored: nobody asked",
    },
)


@pytest.fixture
def invoker(tmp_path: pathlib.Path) -> tuple[NetworkInvoker, FakePluginExec]:
    fake = FakePluginExec()
    bin_dir = make_bin_dir(str(tmp_path / "bin"), "bridge", "portmap", "bandwidth", "loopback")
    return NetworkInvoker(fake, [bin_dir], 5.0), fake


def test_plugin_config_derivation() -> None:
    net = network()
    conf = plugin_config(net, net.plugins[1], RT.capability_args, {"cniVersion": "1.0.0"})
    assert conf["name"] == "cpod-net"
    assert conf["cniVersion"] == "1.0.0"
    assert conf["snat"] is True  # unknown keys pass through
    assert "capabilities" not in conf
    assert conf["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    assert conf["prevResult"] == {"cniVersion": "1.0.0"}
    first = plugin_config(net, net.plugins[0], RT.capability_args, None)
    assert "runtimeConfig" not in first  # bridge declares no capabilities
    assert "prevResult" not in first


def test_add_chains_prev_result_in_order(invoker: tuple[NetworkInvoker, FakePluginExec]) -> None:
    inv, fake = invoker
    result = asyncio.run(inv.add(network(), RT))
    assert fake.commands() == [("bridge", "ADD"), ("portmap", "ADD"), ("bandwidth", "ADD")]
    bridge, portmap, bandwidth = fake.calls
    assert "prevResult" not in bridge.conf
    assert portmap.conf["prevResult"]["ips"][0]["address"] == "10.123.0.2/24"
    assert bandwidth.conf["runtimeConfig"] == {"bandwidth": {"ingressRate": 1000}}
    assert bridge.env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert bridge.env["CNI_NETNS"] == RT.netns
    assert bridge.env["CNI_IFNAME"] == "eth0"
    assert bridge.env["CNI_CONTAINERID"] == "sb1"
    assert bridge.env["CNI_PATH"].endswith("/bin")
    assert result.pod_ips() == ["10.123.0.2"]


def test_del_runs_in_reverse_with_cached_result(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    cached = {"cniVersion": "1.0.0", "ips": []}
    asyncio.run(inv.delete(network(), RT, cached))
    assert fake.commands() == [("bandwidth", "DEL"), ("portmap", "DEL"), ("bridge", "DEL")]
    assert all(call.conf["prevResult"] == cached for call in fake.calls)


def test_del_of_old_lists_gets_no_prev_result(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    asyncio.run(inv.delete(network("0.3.1"), RT, {"cniVersion": "0.3.1"}))
    assert all("prevResult" not in call.conf for call in fake.calls)


def test_del_tries_every_plugin_and_reports_the_first_failure(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    fake.fail[("portmap", "DEL")] = (5, "iptables failed", "exit status 4")
    with pytest.raises(CniPluginError) as err:
        asyncio.run(inv.delete(network(), RT, None))
    assert fake.commands() == [("bandwidth", "DEL"), ("portmap", "DEL"), ("bridge", "DEL")]
    assert err.value.code == 5
    assert err.value.details == "exit status 4"
    assert err.value.network == "cpod-net"
    assert "cpod-net" in str(err.value)


def test_add_failure_carries_code_msg_details(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    fake.fail[("portmap", "ADD")] = (11, "xtables lock held", "retry")
    with pytest.raises(CniTryAgainError) as err:
        asyncio.run(inv.add(network(), RT))
    assert fake.commands() == [("bridge", "ADD"), ("portmap", "ADD")]
    assert (err.value.plugin, err.value.command, err.value.code) == ("portmap", "ADD", 11)


def test_check_forward_with_cached_result_unless_disabled(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    assert asyncio.run(inv.check(network(), RT, {"cniVersion": "1.0.0"}))
    assert fake.commands() == [("bridge", "CHECK"), ("portmap", "CHECK"), ("bandwidth", "CHECK")]
    fake.calls.clear()
    assert not asyncio.run(inv.check(network(disableCheck=True), RT, {}))
    assert not asyncio.run(inv.check(network("0.3.1"), RT, {}))
    assert fake.calls == []


def test_status_and_gc_only_for_1_1_0_plugins(
    invoker: tuple[NetworkInvoker, FakePluginExec],
) -> None:
    inv, fake = invoker
    asyncio.run(inv.status(network("1.0.0")))
    asyncio.run(inv.gc(network("1.0.0"), [("sb1", "eth0")]))
    assert fake.calls == []
    fake.versions["bridge"] = ["1.0.0", "1.1.0"]
    asyncio.run(inv.status(network("1.1.0")))
    asyncio.run(inv.gc(network("1.1.0"), [("sb1", "eth0")]))
    work = [c for c in fake.calls if c.command != "VERSION"]
    assert [(c.plugin, c.command) for c in work] == [("bridge", "STATUS"), ("bridge", "GC")]
    gc = work[1]
    assert gc.conf["cni.dev/valid-attachments"] == [{"containerID": "sb1", "ifname": "eth0"}]
    assert gc.conf["cni.dev/attachments"] == gc.conf["cni.dev/valid-attachments"]
    assert "CNI_CONTAINERID" not in gc.env
    fake.calls.clear()
    asyncio.run(inv.gc(network("1.1.0", disableGC=True), []))
    assert fake.calls == []


def test_cni_versions_array_picks_newest_supported() -> None:
    doc = {"cniVersions": ["0.4.0", "1.1.0", "9.9.9"], "name": "x", "plugins": [{"type": "a"}]}
    assert cniconfig.parse(doc, "t", single_plugin=False).cni_version == "1.1.0"


def test_decode_error_prefers_json_on_stdout() -> None:
    err = decode_error(
        "bridge", "ADD", b'{"code":7,"msg":"bad config","details":"no bridge"}', b"noise", 1
    )
    assert isinstance(err, CniPluginError)
    assert (err.code, err.msg, err.details) == (7, "bad config", "no bridge")
    err = decode_error("bridge", "ADD", b"", b"panic: boom\n", 2)
    assert isinstance(err, CniPluginError)
    assert err.msg == "panic: boom"
    err = decode_error("bridge", "ADD", b"", b"", 2)
    assert isinstance(err, CniPluginError)
    assert err.msg == "exit status 2"


def script(path: pathlib.Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_subprocess_exec_passes_env_and_stdin(tmp_path: pathlib.Path) -> None:
    plugin = script(
        tmp_path / "echoer",
        'cat > "$0.stdin"; printf \'{"cmd":"%s","netns":"%s"}\' "$CNI_COMMAND" "$CNI_NETNS"\n',
    )
    out = asyncio.run(
        SubprocessPluginExec().exec_plugin(
            plugin, b'{"x":1}', {"CNI_COMMAND": "ADD", "CNI_NETNS": "/ns"}, 5.0
        )
    )
    assert json.loads(out) == {"cmd": "ADD", "netns": "/ns"}
    assert (tmp_path / "echoer.stdin").read_text() == '{"x":1}'


def test_subprocess_exec_decodes_plugin_error(tmp_path: pathlib.Path) -> None:
    plugin = script(
        tmp_path / "failer",
        'echo \'{"cniVersion":"1.0.0","code":4,"msg":"bad env","details":"CNI_NETNS"}\'\nexit 1\n',
    )
    with pytest.raises(CniPluginError) as err:
        asyncio.run(SubprocessPluginExec().exec_plugin(plugin, b"{}", {"CNI_COMMAND": "ADD"}, 5))
    assert (err.value.plugin, err.value.code, err.value.details) == ("failer", 4, "CNI_NETNS")


def test_subprocess_exec_kills_a_plugin_that_hangs(tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The plugin starts a child that would outlive it; the timeout kills the whole group.
    plugin = script(tmp_path / "hanger", f"sleep 60 & echo $! > {pidfile}\nsleep 60\n")
    started = time.monotonic()
    with pytest.raises(CniTimeoutError) as err:
        asyncio.run(SubprocessPluginExec().exec_plugin(plugin, b"{}", {"CNI_COMMAND": "ADD"}, 0.5))
    assert time.monotonic() - started < 10
    assert "hanger ADD" in str(err.value)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        with open(f"/proc/{child}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.05)
    if os.path.exists(f"/proc/{child}"):
        with open(f"/proc/{child}/stat") as f:
            assert f.read().split(")")[-1].split()[0] in ("Z", "X")
