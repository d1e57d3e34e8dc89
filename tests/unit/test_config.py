"""Configuration: embedded defaults, YAML over them, clear errors for bad keys and values."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

from cri import config as configmod


def write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "crib.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_match_design(tmp_path: pathlib.Path) -> None:
    config = configmod.load(write(tmp_path, ""))
    assert config.listen == "/run/crib/crib.sock"
    assert config.root == "/var/lib/crib"
    assert config.state == "/run/crib"
    assert config.cgroup_driver == "cgroupfs"
    assert config.default_runtime == "crib"
    assert config.runtimes["crib"].path == "crib-runtime"
    assert config.pause == ("catatonit", "-P")
    assert config.cni.conf_dir == "/etc/cni/net.d"
    assert config.cni.bin_dirs == ("/usr/lib/cni", "/opt/cni/bin")
    assert config.cni.default_network.bridge == "crib0"
    assert config.cni.default_network.subnet == "10.88.0.0/16"
    assert config.cni.plugin_timeout_s == 60.0
    assert config.streaming.address == "127.0.0.1"
    assert config.streaming.port == 0
    assert config.metrics.address == ""


def test_file_overrides_and_maps_merge(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """
log_level: debug
runtimes:
  kata: {path: /usr/bin/kata-runtime}
registries:
  registry.k8s.io: {mirrors: ["http://127.0.0.1:5000"], upstream: false}
cni:
  conf_dir: /tmp/net.d
""",
    )
    config = configmod.load(path)
    assert config.log_level == "debug"
    assert set(config.runtimes) >= {"crib", "kata"}
    assert config.registries["registry.k8s.io"].mirrors == ("http://127.0.0.1:5000",)
    assert config.registries["registry.k8s.io"].upstream is False
    assert "docker.io" in config.registries
    assert config.cni.conf_dir == "/tmp/net.d"
    assert config.cni.bin_dirs == ("/usr/lib/cni", "/opt/cni/bin")  # untouched sibling


def test_overrides_win_over_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "root: /a\n")
    config = configmod.load(path, {"root": "/b", "listen": "/tmp/x.sock"})
    assert config.root == "/b"
    assert config.listen == "/tmp/x.sock"


def test_null_removes_a_default_map_entry(tmp_path: pathlib.Path) -> None:
    config = configmod.load(write(tmp_path, "registries: {docker.io: null}\n"))
    assert "docker.io" not in config.registries


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("nope: 1\n", "nope"),
        ("cni: {conf_dirs: /x}\n", "cni.conf_dirs"),
        ("runtimes: {crib: {path: x, flavour: y}}\n", "runtimes.crib.flavour"),
        ("streaming: {adress: 1.2.3.4}\n", "streaming.adress"),
    ],
)
def test_unknown_key_named(tmp_path: pathlib.Path, text: str, key: str) -> None:
    with pytest.raises(configmod.ConfigError) as err:
        configmod.load(write(tmp_path, text))
    assert err.value.key == key
    assert f"unknown key {key!r}" in str(err.value)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("log_level: loud\n", "log_level", "loud"),
        ("listen: relative.sock\n", "listen", "relative.sock"),
        ("cgroup_driver: cgroupv3\n", "cgroup_driver", "cgroupv3"),
        ("cgroup_driver: systemd\n", "cgroup_driver", "systemd"),
        ("default_runtime: kata\n", "default_runtime", "kata"),
        ("streaming: {port: 70000}\n", "streaming.port", 70000),
        ("streaming: {port: '80'}\n", "streaming.port", "80"),
        ("streaming: {address: localhost}\n", "streaming.address", "localhost"),
        ("metrics: {address: 9090}\n", "metrics.address", 9090),
        ("metrics: {address: 'x:y'}\n", "metrics.address", "x:y"),
        ("cni: {default_network: {subnet: 10.88/99}}\n", "cni.default_network.subnet", "10.88/99"),
        ("cni: {bin_dirs: [relative]}\n", "cni.bin_dirs[0]", "relative"),
        ("cni: {plugin_timeout_s: 0}\n", "cni.plugin_timeout_s", 0.0),
        ("registries: {a.io: {mirrors: ['ftp://x']}}\n", "registries.a.io.mirrors[0]", "ftp://x"),
        ("registries: {a.io: {insecure: 'yes'}}\n", "registries.a.io.insecure", "yes"),
        ("pause: []\n", "pause", []),
        ("drain_timeout_s: -1\n", "drain_timeout_s", -1.0),
        ("pinned_images: foo\n", "pinned_images", "foo"),
    ],
)
def test_bad_value_named(tmp_path: pathlib.Path, text: str, key: str, value: object) -> None:
    with pytest.raises(configmod.ConfigError) as err:
        configmod.load(write(tmp_path, text))
    assert err.value.key == key
    assert repr(value) in str(err.value)
    assert "\n" not in str(err.value)


def test_not_yaml_is_one_line(tmp_path: pathlib.Path) -> None:
    with pytest.raises(configmod.ConfigError) as err:
        configmod.load(write(tmp_path, "a: [1,\n b: }\n"))
    assert "not valid YAML" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(configmod.ConfigError, match="No such file"):
        configmod.load(str(tmp_path / "absent.yaml"))


def test_yaml_round_trip(tmp_path: pathlib.Path) -> None:
    config = configmod.load(write(tmp_path, "log_level: warning\n"))
    again = configmod.load(write(tmp_path, configmod.to_yaml(config)))
    assert again == config


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cri", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_config_prints_effective_yaml(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "log_level: debug\n")
    result = run_cli("config", "--config", path, "--root", "/srv/crib")
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["log_level"] == "debug"
    assert printed["root"] == "/srv/crib"
    assert printed["cni"]["default_network"]["bridge"] == "crib0"


def test_cli_flags_before_subcommand(tmp_path: pathlib.Path) -> None:
    result = run_cli("--state", "/srv/state", "config")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["state"] == "/srv/state"


def test_cli_unknown_key_exits_2_naming_it(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "cni:\n  conf_dri: /x\n")
    result = run_cli("serve", "--config", path)
    assert result.returncode == 2
    assert "cni.conf_dri" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_value_exits_2_naming_key_and_value(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "log_level: chatty\n")
    result = run_cli("--config", path)
    assert result.returncode == 2
    assert "log_level" in result.stderr
    assert "chatty" in result.stderr
