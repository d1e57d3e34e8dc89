"""CNI results: what an ADD returns, read from any spec version crib speaks.

Versions and shapes (SPEC.md "Success", and the older specs' result sections):
  0.1.0, 0.2.0   {"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns": {...}}
  0.3.x, 0.4.0   {"interfaces": [...], "ips": [{"version", "address", "gateway", "interface"}],
                  "routes": [...], "dns": {...}}
  1.0.0, 1.1.0   as 0.4.0 without `ips[].version`; 1.1.0 adds route mtu/advmss/priority/
                  table/scope and interface socketPath/pciID (kept in `raw`)

The typed `Result` carries what crib uses (the pod's IPs); `raw` keeps the plugin's
JSON untouched so it can be handed back as prevResult and cached for DEL/CHECK.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from cni.errors import CniResultError


@dataclasses.dataclass(frozen=True)
class Interface:
    """An interface the plugin created; `sandbox` is the netns path when it is inside the pod."""

    name: str
    mac: str = ""
    sandbox: str = ""


@dataclasses.dataclass(frozen=True)
class IPConfig:
    """One address (CIDR form) and the index of its interface in `Result.interfaces`."""

    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    gateway: str = ""
    interface: int | None = None


@dataclasses.dataclass(frozen=True)
class Route:
    """A route the plugin installed in the pod."""

    dst: str
    gw: str = ""


@dataclasses.dataclass(frozen=True)
class DNS:
    """DNS settings a plugin suggests (crib takes the pod's DNS from the CRI config)."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """A parsed ADD result."""

    cni_version: str
    interfaces: tuple[Interface, ...]
    ips: tuple[IPConfig, ...]
    routes: tuple[Route, ...]
    dns: DNS
    raw: dict[str, Any]

    def pod_ips(self) -> list[str]:
        """The pod's addresses, without prefix length, in result order.

        Only addresses on interfaces inside the sandbox count (an `interface` index that
        points at a host-side interface, e.g. a bridge, is skipped); an address with no
        interface index is taken, as kubelet's dockershim and CRI-O do.
        """
        found: list[str] = []
        for ip in self.ips:
            on_host = (
                ip.interface is not None
                and 0 <= ip.interface < len(self.interfaces)
                and not self.interfaces[ip.interface].sandbox
            )
            if on_host:
                continue
            text = str(ip.address.ip)
            if text not in found:
                found.append(text)
        return found


def _str(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CniResultError(f"cni result: {what} is not a string: {value!r}")
    return value


def _strs(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CniResultError(f"cni result: {what} is not a list: {value!r}")
    return tuple(_str(v, what) for v in value)


def _address(value: object) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    text = _str(value, "ips[].address")
    if "/" not in text:
        raise CniResultError(f"cni result: bad address {value!r} (want CIDR form)")
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise CniResultError(f"cni result: bad address {value!r} (want CIDR form)") from None


def _dns(value: object) -> DNS:
    if value is None:
        return DNS()
    if not isinstance(value, dict):
        raise CniResultError(f"cni result: dns is not an object: {value!r}")
    return DNS(
        nameservers=_strs(value.get("nameservers"), "dns.nameservers"),
        domain=_str(value.get("domain"), "dns.domain"),
        search=_strs(value.get("search"), "dns.search"),
        options=_strs(value.get("options"), "dns.options"),
    )


def _routes(value: object) -> tuple[Route, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CniResultError(f"cni result: routes is not a list: {value!r}")
    routes = []
    for route in value:
        if not isinstance(route, dict):
            raise CniResultError(f"cni result: route is not an object: {route!r}")
        routes.append(Route(_str(route.get("dst"), "routes[].dst"), _str(route.get("gw"), "gw")))
    return tuple(routes)


def _legacy(raw: dict[str, Any], version: str) -> Result:
    # 0.1.0/0.2.0: one address per family, no interfaces.
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        family = raw.get(key)
        if family is None:
            continue
        if not isinstance(family, dict):
            raise CniResultError(f"cni result: {key} is not an object: {family!r}")
        ips.append(IPConfig(_address(family.get("ip")), _str(family.get("gateway"), "gateway")))
        routes.extend(_routes(family.get("routes")))
    return Result(version, (), tuple(ips), tuple(routes), _dns(raw.get("dns")), raw)


def parse_result(raw: object) -> Result:
    """Read a plugin's ADD output (already decoded from JSON)."""
    if not isinstance(raw, dict):
        raise CniResultError(f"cni result is not a JSON object: {raw!r}")
    version = raw.get("cniVersion", "")
    if not isinstance(version, str) or not version:
        raise CniResultError("cni result has no cniVersion")
    if version in ("0.1.0", "0.2.0"):
        return _legacy(raw, version)
    interfaces = []
    for entry in raw.get("interfaces") or []:
        if not isinstance(entry, dict):
            raise CniResultError(f"cni result: interface is not an object: {entry!r}")
        interfaces.append(
            Interface(
                name=_str(entry.get("name"), "interfaces[].name"),
                mac=_str(entry.get("mac"), "interfaces[].mac"),
                sandbox=_str(entry.get("sandbox"), "interfaces[].sandbox"),
            )
        )
    ips = []
    for entry in raw.get("ips") or []:
        if not isinstance(entry, dict):
            raise CniResultError(f"cni result: ip is not an object: {entry!r}")
        index = entry.get("interface")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise CniResultError(f"cni result: ips[].interface is not an index: {index!r}")
        ips.append(
            IPConfig(_address(entry.get("address")), _str(entry.get("gateway"), "gateway"), index)
        )
    return Result(
        cni_version=version,
        interfaces=tuple(interfaces),
        ips=tuple(ips),
        routes=_routes(raw.get("routes")),
        dns=_dns(raw.get("dns")),
        raw=raw,
    )
