"""crib's configuration: YAML at /etc/crib/crib.yaml over embedded defaults.

Every key has a default, so no file is needed. A file may give any subset of the
keys; maps (`runtimes`, `registries`) are merged entry by entry over the defaults.
An unknown key or a value of the wrong type or range is a `ConfigError` naming the
key (dotted path) and the value, and stops start-up (exit status 2).

Key names are fixed (docs, deploy files and tools rely on them); see DESIGN.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import types
import typing
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from common.errors import InvalidArgumentError
from common.log import LEVELS
from image import reference as image_reference
from image.reference import IMAGE_ID_RE

DEFAULT_CONFIG_PATH = "/etc/crib/crib.yaml"
CGROUP_DRIVERS = ("cgroupfs", "systemd")


class ConfigError(InvalidArgumentError):
    """A configuration key is unknown or its value is unusable."""

    def __init__(self, message: str, key: str = "", value: object = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


@dataclasses.dataclass(frozen=True)
class RuntimeHandlerConfig:
    """One CRI runtime handler (a RuntimeClass `handler` name): an OCI runtime binary."""

    path: str
    # The runtime's --root (its per-container state); empty means <state>/runtime/<name>.
    root: str = ""


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """How to reach one registry host: mirrors tried in order, then the host itself."""

    mirrors: tuple[str, ...] = ()
    upstream: bool = True
    insecure: bool = False


@dataclasses.dataclass(frozen=True)
class DefaultNetworkConfig:
    """The network crib uses when the CNI conf dir holds none (crib writes nothing there)."""

    bridge: str = "crib0"
    subnet: str = "10.88.0.0/16"


@dataclasses.dataclass(frozen=True)
class CniConfig:
    """Where CNI network configurations and plugin binaries are found."""

    conf_dir: str = "/etc/cni/net.d"
    bin_dirs: tuple[str, ...] = ("/usr/lib/cni", "/opt/cni/bin")
    default_network: DefaultNetworkConfig = DefaultNetworkConfig()
    # Each plugin call (ADD, DEL, CHECK, ...) is killed after this long; kubelet itself
    # gives RunPodSandbox 4 minutes.
    plugin_timeout_s: float = 60.0


@dataclasses.dataclass(frozen=True)
class StreamingConfig:
    """The exec/attach/port-forward HTTP server; port 0 picks a free port."""

    address: str = "127.0.0.1"
    port: int = 0


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint; an empty address leaves it off."""

    address: str = ""


def _default_runtimes() -> dict[str, RuntimeHandlerConfig]:
    # runc and crun are offered only when installed: Status must not advertise a
    # handler whose binary is missing.
    runtimes = {"crib": RuntimeHandlerConfig(path="crib-runtime")}
    for name in ("runc", "crun"):
        if shutil.which(name):
            runtimes[name] = RuntimeHandlerConfig(path=name)
    return runtimes


def _default_registries() -> dict[str, RegistryConfig]:
    return {"docker.io": RegistryConfig()}


@dataclasses.dataclass(frozen=True)
class Config:
    """The effective configuration of one crib daemon."""

    listen: str = "/run/crib/crib.sock"
    root: str = "/var/lib/crib"
    state: str = "/run/crib"
    log_level: str = "info"
    cgroup_driver: str = "cgroupfs"
    default_runtime: str = "crib"
    runtimes: dict[str, RuntimeHandlerConfig] = dataclasses.field(default_factory=_default_runtimes)
    conmon: str = "conmon"
    pause: tuple[str, ...] = ("catatonit", "-P")
    pinned_images: tuple[str, ...] = ()
    registries: dict[str, RegistryConfig] = dataclasses.field(default_factory=_default_registries)
    # A pull fails when no byte arrived for this long (not a limit on the whole pull: large
    # images on slow links must finish; containerd image_pull_progress_timeout).
    pull_progress_timeout_s: float = 300.0
    # Layer downloads in flight at once, over all pulls (containerd's default is 3).
    max_concurrent_downloads: int = 3
    cni: CniConfig = CniConfig()
    streaming: StreamingConfig = StreamingConfig()
    metrics: MetricsConfig = MetricsConfig()
    # How long SIGTERM waits for in-flight RPCs before cancelling them.
    drain_timeout_s: float = 10.0

    def runtime_root(self, handler: str) -> str:
        """The --root directory of runtime handler `handler`."""
        configured = self.runtimes[handler].root
        return configured or os.path.join(self.state, "runtime", handler)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (for YAML, JSON and Status verbose info)."""
        plain = _to_plain(self)
        assert isinstance(plain, dict)
        return plain


def _to_plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    return value


def to_yaml(config: Config) -> str:
    """The configuration as YAML, keys in declaration order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)


# --- loading -----------------------------------------------------------------------------


def load(path: str | None, overrides: Mapping[str, object] | None = None) -> Config:
    """Read `path` (None: the default path if it exists) over the defaults, then `overrides`.

    `overrides` maps top-level keys to values from command-line flags.
    """
    data: object = {}
    if path is None and os.path.exists(DEFAULT_CONFIG_PATH):
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ConfigError(f"config {path}: {err.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            one_line = " ".join(str(err).split())
            raise ConfigError(f"config {path}: not valid YAML: {one_line}") from None
        if data is None:
            data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {path}: the top level must be a mapping of keys")
    merged = dict(data)
    merged.update(overrides or {})
    config: Config = _convert_dataclass(Config, merged, "", Config())
    validate(config)
    return config


def _bad(key: str, value: object, want: str) -> ConfigError:
    return ConfigError(f"key {key!r}: bad value {value!r}: {want}", key, value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _convert_dataclass(cls: type[Any], data: object, key: str, default: Any) -> Any:
    if not isinstance(data, Mapping):
        raise _bad(key or "(top level)", data, "want a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for name in data:
        if name not in names:
            raise ConfigError(f"unknown key {_join(key, str(name))!r}", _join(key, str(name)))
    values = {}
    for f in dataclasses.fields(cls):
        sub_key = _join(key, f.name)
        sub_default = getattr(default, f.name) if default is not None else None
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], sub_key, sub_default)
        elif default is not None:
            values[f.name] = sub_default
    try:
        return cls(**values)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values]
        raise ConfigError(
            f"key {_join(key, missing[0])!r} is required", _join(key, missing[0])
        ) from None


def _convert(tp: Any, value: object, key: str, default: Any) -> object:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, key, default)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad(key, value, "want true or false")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(key, value, "want an integer")
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _bad(key, value, "want a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _bad(key, value, "want a string")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _bad(key, value, "want a list of strings")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(item_tp, v, f"{key}[{i}]", None) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _bad(key, value, "want a mapping")
        _, value_tp = typing.get_args(tp)
        merged = dict(default or {})
        for name, item in value.items():
            if not isinstance(name, str) or not name:
                raise _bad(key, name, "want non-empty string keys")
            item_default = merged.get(name)
            if item is None:
                # `name: null` removes a default entry (e.g. a runtime handler).
                merged.pop(name, None)
                continue
            merged[name] = _convert(value_tp, item, f"{key}.{name}", item_default)
        return merged
    if isinstance(tp, types.UnionType):  # pragma: no cover - no such keys today
        raise TypeError(f"unsupported config type {tp}")
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover


# --- validation of values ------------------------------------------------------------------


def validate(config: Config) -> None:
    """Check values beyond their types; raise `ConfigError` naming the first bad key."""
    for key in ("listen", "root", "state"):
        path = getattr(config, key)
        if not os.path.isabs(path):
            raise _bad(key, path, "want an absolute path")
    if config.log_level not in LEVELS:
        raise _bad("log_level", config.log_level, f"want one of {', '.join(LEVELS)}")
    if config.cgroup_driver not in CGROUP_DRIVERS:
        raise _bad(
            "cgroup_driver", config.cgroup_driver, f"want one of {', '.join(CGROUP_DRIVERS)}"
        )
    if config.cgroup_driver == "systemd":
        # Reporting a driver crib does not drive would make kubelet build cgroup paths
        # (slice:prefix:name) that crib-runtime cannot place.
        raise _bad(
            "cgroup_driver", "systemd", "the systemd driver is not supported yet; use cgroupfs"
        )
    if not config.runtimes:
        raise ConfigError("key 'runtimes' must name at least one runtime handler", "runtimes")
    for name, handler in config.runtimes.items():
        if not handler.path:
            raise _bad(f"runtimes.{name}.path", handler.path, "want a binary name or path")
        if handler.root and not os.path.isabs(handler.root):
            raise _bad(f"runtimes.{name}.root", handler.root, "want an absolute path")
    if config.default_runtime not in config.runtimes:
        raise _bad(
            "default_runtime",
            config.default_runtime,
            f"want one of the runtimes: {', '.join(sorted(config.runtimes))}",
        )
    if not config.conmon:
        raise _bad("conmon", config.conmon, "want a binary name or path")
    if not config.pause or not config.pause[0]:
        raise _bad("pause", list(config.pause), "want a command: [binary, args...]")
    for i, pinned in enumerate(config.pinned_images):
        if IMAGE_ID_RE.match(pinned.removeprefix("sha256:")):
            continue
        try:
            image_reference.parse(pinned)
        except InvalidArgumentError as err:
            raise _bad(
                f"pinned_images[{i}]", pinned, f"want an image reference or id ({err})"
            ) from None
    if config.pull_progress_timeout_s <= 0:
        raise _bad("pull_progress_timeout_s", config.pull_progress_timeout_s, "want seconds > 0")
    if not 1 <= config.max_concurrent_downloads <= 64:
        raise _bad("max_concurrent_downloads", config.max_concurrent_downloads, "want 1-64")
    for host, registry in config.registries.items():
        if not image_reference.DOMAIN_RE.match(host):
            raise _bad(f"registries.{host}", host, "want a registry host[:port] as the key")
        for i, mirror in enumerate(registry.mirrors):
            _check_url(f"registries.{host}.mirrors[{i}]", mirror)
        if not registry.upstream and not registry.mirrors:
            raise _bad(
                f"registries.{host}.upstream", False, "a registry without mirrors needs upstream"
            )
    for key in ("conf_dir",):
        if not os.path.isabs(getattr(config.cni, key)):
            raise _bad(f"cni.{key}", getattr(config.cni, key), "want an absolute path")
    if config.cni.plugin_timeout_s <= 0:
        raise _bad("cni.plugin_timeout_s", config.cni.plugin_timeout_s, "want seconds > 0")
    for i, bin_dir in enumerate(config.cni.bin_dirs):
        if not os.path.isabs(bin_dir):
            raise _bad(f"cni.bin_dirs[{i}]", bin_dir, "want an absolute path")
    net = config.cni.default_network
    try:
        ipaddress.ip_network(net.subnet)
    except ValueError:
        raise _bad(
            "cni.default_network.subnet", net.subnet, "want a CIDR like 10.88.0.0/16"
        ) from None
    if not net.bridge or len(net.bridge) > 15 or "/" in net.bridge or " " in net.bridge:
        raise _bad("cni.default_network.bridge", net.bridge, "want an interface name (1-15 chars)")
    try:
        ipaddress.ip_address(config.streaming.address)
    except ValueError:
        raise _bad("streaming.address", config.streaming.address, "want an IP address") from None
    if not 0 <= config.streaming.port <= 65535:
        raise _bad("streaming.port", config.streaming.port, "want 0-65535 (0: any free port)")
    if config.metrics.address:
        _check_host_port("metrics.address", config.metrics.address)
    if config.drain_timeout_s < 0:
        raise _bad("drain_timeout_s", config.drain_timeout_s, "want a number of seconds >= 0")


def _check_url(key: str, value: str) -> None:
    url = value if "://" in value else f"https://{value}"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _bad(key, value, "want a registry URL like https://mirror.example:5000")


def _check_host_port(key: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        port_ok = sep and 0 < int(port) <= 65535
    except ValueError:
        port_ok = False
    if not port_ok:
        raise _bad(key, value, "want IP:PORT like 127.0.0.1:9090")
