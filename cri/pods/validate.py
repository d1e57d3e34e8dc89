"""PodSandboxConfig → a checked `SandboxPlan`, or INVALID_ARGUMENT naming the field.

Pure: no kernel, no disk. Everything RunPodSandbox acts on passes through here first, so
bad input is refused before anything is created.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from cni.manager import Bandwidth, PortMapping
from common.errors import InvalidArgumentError, UnimplementedError
from cri.api import api_pb2 as pb
from cri.config import Config
from cri.pods.quantity import parse_quantity
from sandbox.pod import cgroup, sysctl
from sandbox.pod.errors import PodConfigError
from sandbox.pod.files import DnsConfig, validate_dns, validate_hostname
from sandbox.pod.spec import PidMode, PodNamespaces

INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"
PROTOCOLS = {pb.Protocol.TCP: "tcp", pb.Protocol.UDP: "udp", pb.Protocol.SCTP: "sctp"}
# containerd's annotation keys for the pod's resources, read by VM-based runtimes and NRI.
RESOURCE_ANNOTATIONS = {
    "cpu_period": "io.kubernetes.cri.sandbox-cpu-period",
    "cpu_quota": "io.kubernetes.cri.sandbox-cpu-quota",
    "cpu_shares": "io.kubernetes.cri.sandbox-cpu-shares",
    "memory_limit_in_bytes": "io.kubernetes.cri.sandbox-memory",
}


@dataclasses.dataclass(frozen=True)
class SandboxPlan:
    """A checked RunPodSandbox request."""

    name: str
    namespace: str
    uid: str
    attempt: int
    cri_name: str
    runtime_handler: str
    labels: dict[str, str]
    annotations: dict[str, str]
    hostname: str  # "" = decided from the sandbox id / host (see manager)
    log_directory: str
    cgroup_parent: str
    namespaces: PodNamespaces
    port_mappings: tuple[PortMapping, ...]
    dns: DnsConfig
    sysctls: dict[str, str]
    bandwidth: Bandwidth | None
    uid_gid: tuple[int, int]
    supplemental_groups: tuple[int, ...]
    resource_annotations: dict[str, str]
    config_json: dict[str, Any]


def sandbox_name(metadata: pb.PodSandboxMetadata) -> str:
    """The name reserved for a pod sandbox (CRI-O's and containerd's form)."""
    return "_".join(
        ["k8s", "POD", metadata.name, metadata.namespace, metadata.uid, str(metadata.attempt)]
    )


def _invalid(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message)


def _namespaces(options: pb.NamespaceOption) -> PodNamespaces:
    field = "config.linux.security_context.namespace_options"
    for kind in ("network", "ipc"):
        mode = getattr(options, kind)
        if mode not in (pb.NamespaceMode.POD, pb.NamespaceMode.NODE):
            raise _invalid(
                f"{field}.{kind}: {pb.NamespaceMode.Name(mode)} is not a pod-level mode"
                " (want POD or NODE)"
            )
    pid_modes = {
        pb.NamespaceMode.POD: PidMode.POD,
        pb.NamespaceMode.CONTAINER: PidMode.CONTAINER,
        pb.NamespaceMode.NODE: PidMode.NODE,
    }
    if options.pid not in pid_modes:
        raise _invalid(
            f"{field}.pid: {pb.NamespaceMode.Name(options.pid)} is not a pod-level mode"
            " (want POD, CONTAINER or NODE)"
        )
    if options.HasField("userns_options") and options.userns_options.mode != pb.NamespaceMode.NODE:
        raise UnimplementedError(
            f"{field}.userns_options: user namespaces are not supported by crib yet"
            " (Status reports user_namespaces=false)"
        )
    return PodNamespaces(
        host_network=options.network == pb.NamespaceMode.NODE,
        host_ipc=options.ipc == pb.NamespaceMode.NODE,
        pid=pid_modes[options.pid],
    )


def _port_mappings(mappings: Any) -> tuple[PortMapping, ...]:
    out = []
    for i, m in enumerate(mappings):
        field = f"config.port_mappings[{i}]"
        if not 0 < m.container_port <= 65535:
            raise _invalid(f"{field}.container_port: {m.container_port} is not a port")
        if not 0 <= m.host_port <= 65535:
            raise _invalid(f"{field}.host_port: {m.host_port} is not a port")
        if m.protocol not in PROTOCOLS:
            raise _invalid(f"{field}.protocol: unknown protocol {m.protocol}")
        if m.host_ip:
            try:
                ipaddress.ip_address(m.host_ip)
            except ValueError:
                raise _invalid(f"{field}.host_ip: {m.host_ip!r} is not an IP address") from None
        out.append(PortMapping(m.host_port, m.container_port, PROTOCOLS[m.protocol], m.host_ip))
    return tuple(out)


def _bandwidth(annotations: Mapping[str, str]) -> Bandwidth | None:
    rates = {}
    for key in (INGRESS_BANDWIDTH, EGRESS_BANDWIDTH):
        if key not in annotations:
            continue
        try:
            rate = parse_quantity(annotations[key])
        except ValueError:
            raise _invalid(
                f"config.annotations[{key}]: {annotations[key]!r} is not a quantity like 10M"
            ) from None
        if rate <= 0:
            raise _invalid(f"config.annotations[{key}]: {annotations[key]!r} must be positive")
        rates[key] = rate
    if not rates:
        return None
    return Bandwidth(
        ingress_rate_bps=rates.get(INGRESS_BANDWIDTH, 0),
        egress_rate_bps=rates.get(EGRESS_BANDWIDTH, 0),
    )


def _resource_annotations(linux: pb.LinuxPodSandboxConfig) -> dict[str, str]:
    # Pod resources and overhead are the pod's totals; kubelet sizes the pod cgroup itself.
    # crib records them (as containerd does) for tools and VM-style handlers.
    out = {}
    if linux.HasField("resources"):
        for name, key in RESOURCE_ANNOTATIONS.items():
            value = getattr(linux.resources, name)
            if value:
                out[key] = str(value)
    if linux.HasField("overhead"):
        for name, key in RESOURCE_ANNOTATIONS.items():
            value = getattr(linux.overhead, name)
            if value:
                out[key.replace("sandbox-", "sandbox-overhead-")] = str(value)
    return out


def plan(request: pb.RunPodSandboxRequest, config: Config) -> SandboxPlan:
    """Check a RunPodSandbox request; raise INVALID_ARGUMENT naming the first bad field."""
    if not request.HasField("config"):
        raise _invalid("config is required")
    pod = request.config
    if not pod.HasField("metadata"):
        raise _invalid("config.metadata is required")
    for name in ("name", "namespace", "uid"):
        value = getattr(pod.metadata, name)
        if not value:
            raise _invalid(f"config.metadata.{name} is required")
        if "\0" in value or "/" in value:
            raise _invalid(f"config.metadata.{name}: {value!r} has '/' or NUL")
    handler = request.runtime_handler or config.default_runtime
    if handler not in config.runtimes:
        raise _invalid(
            f"runtime_handler: unknown handler {handler!r} (configured:"
            f" {', '.join(sorted(config.runtimes))})"
        )
    linux = pod.linux
    security = linux.security_context
    namespaces = _namespaces(security.namespace_options)
    try:
        if pod.hostname:
            validate_hostname(pod.hostname, "config.hostname")
        dns = DnsConfig(
            servers=tuple(pod.dns_config.servers),
            searches=tuple(pod.dns_config.searches),
            options=tuple(pod.dns_config.options),
        )
        validate_dns(dns, "config.dns_config")
        sysctls = sysctl.validate(
            dict(linux.sysctls), namespaces.host_network, namespaces.host_ipc,
            "config.linux.sysctls",
        )  # fmt: skip
        cgroup.validate_parent(linux.cgroup_parent, "config.linux.cgroup_parent")
    except PodConfigError as err:
        raise _invalid(str(err)) from None
    if pod.log_directory and not pod.log_directory.startswith("/"):
        raise _invalid(f"config.log_directory: {pod.log_directory!r} is not an absolute path")
    uid = security.run_as_user.value if security.HasField("run_as_user") else 0
    gid = security.run_as_group.value if security.HasField("run_as_group") else 0
    for field, value in (("run_as_user", uid), ("run_as_group", gid)):
        if not 0 <= value < 2**32 - 1:
            raise _invalid(f"config.linux.security_context.{field}: {value} is out of range")
    return SandboxPlan(
        name=pod.metadata.name,
        namespace=pod.metadata.namespace,
        uid=pod.metadata.uid,
        attempt=pod.metadata.attempt,
        cri_name=sandbox_name(pod.metadata),
        runtime_handler=handler,
        labels=dict(pod.labels),
        annotations=dict(pod.annotations),
        hostname=pod.hostname,
        log_directory=pod.log_directory,
        cgroup_parent=linux.cgroup_parent,
        namespaces=namespaces,
        port_mappings=_port_mappings(pod.port_mappings),
        dns=dns,
        sysctls=sysctls,
        bandwidth=_bandwidth(pod.annotations),
        uid_gid=(uid, gid),
        supplemental_groups=tuple(security.supplemental_groups),
        resource_annotations=_resource_annotations(linux),
        config_json=json_format.MessageToDict(pod, preserving_proto_field_name=True),
    )
