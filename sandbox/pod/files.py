"""The pod's shared files: /etc/hostname, /etc/resolv.conf, /etc/hosts and /dev/shm.

They live in the pod's run directory and are bind-mounted into every container of the
pod (by the containers code). Contents are built by pure functions; `write_pod_files`
writes them, `mount_shm`/`unmount_shm` handle the per-pod tmpfs.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Sequence

from common import atomicfile
from sandbox.pod import mounts
from sandbox.pod.errors import PodConfigError, PodMountError

HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
HOST_SHM = "/dev/shm"
DEFAULT_SHM_SIZE_BYTES = 64 << 20  # docker's, CRI-O's and containerd's default
# glibc reads at most 3 nameservers and resolv.conf(5) caps search at 6 domains / 256 chars
# (kubelet validates more strictly already); crib refuses only what breaks the file.
MAX_NAMESERVERS = 3

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


@dataclasses.dataclass(frozen=True)
class DnsConfig:
    """CRI DNSConfig: servers, search domains, resolver options."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """No DNS settings given: the pod gets the host's resolv.conf."""
        return not (self.servers or self.searches or self.options)


def validate_dns(dns: DnsConfig, field: str = "dns_config") -> None:
    """Refuse values that would corrupt resolv.conf; names the field and value."""
    for server in dns.servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise PodConfigError(f"{field}.servers: {server!r} is not an IP address") from None
    for name, values in (("searches", dns.searches), ("options", dns.options)):
        for value in values:
            if not value or any(c.isspace() for c in value) or "\0" in value:
                raise PodConfigError(f"{field}.{name}: bad entry {value!r}")


def resolv_conf(dns: DnsConfig, host_resolv_conf: str = HOST_RESOLV_CONF) -> bytes:
    """resolv.conf(5) for the pod: from `dns`, or the host's file when `dns` is empty
    (as CRI-O and containerd do for pods without a DNS config)."""
    if dns.is_empty():
        try:
            with open(host_resolv_conf, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines.extend(f"nameserver {server}" for server in dns.servers)
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return ("\n".join(lines) + "\n").encode()


def hosts(hostname: str, pod_ips: Sequence[str]) -> bytes:
    """/etc/hosts for a pod with its own network: localhost entries, then the pod's IPs
    with its hostname (kubelet's managed hosts file has the same shape)."""
    text = HOSTS_HEADER
    for ip in pod_ips:
        text += f"{ip}\t{hostname}\n"
    return text.encode()


def host_hosts(host_hosts_path: str = HOST_HOSTS) -> bytes:
    """The host's /etc/hosts (for host-network pods)."""
    try:
        with open(host_hosts_path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return HOSTS_HEADER.encode()


def validate_hostname(hostname: str, field: str = "hostname") -> None:
    """An RFC 1123 host name of at most 64 bytes (the kernel's UTS limit)."""
    if len(hostname) > 64 or not hostname:
        raise PodConfigError(f"{field}: {hostname!r} must be 1-64 characters")
    for label in hostname.split("."):
        if not label or not all(c.isalnum() or c == "-" for c in label) or label[0] == "-":
            raise PodConfigError(f"{field}: {hostname!r} is not a valid host name")
        if not label.isascii():
            raise PodConfigError(f"{field}: {hostname!r} is not a valid host name")


@dataclasses.dataclass(frozen=True)
class PodFiles:
    """Paths of the pod's shared files."""

    hostname: str
    resolv_conf: str
    hosts: str
    shm: str

    @classmethod
    def under(cls, run_dir: str) -> PodFiles:
        """The files of the pod whose run directory is `run_dir`."""
        return cls(
            hostname=os.path.join(run_dir, "hostname"),
            resolv_conf=os.path.join(run_dir, "resolv.conf"),
            hosts=os.path.join(run_dir, "hosts"),
            shm=os.path.join(run_dir, "shm"),
        )


def write_file(path: str, data: bytes) -> None:
    """Write one pod file (mode 0644: containers running as any user read it)."""
    atomicfile.write_bytes(path, data, mode=0o644)


def mount_shm(path: str, size_bytes: int = DEFAULT_SHM_SIZE_BYTES) -> None:
    """Mount the pod's /dev/shm: a tmpfs, mode 1777, nosuid,nodev,noexec."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    if mounts.is_mount_point(path):
        return  # a retry of an interrupted set-up for the same pod
    try:
        mounts.mount(
            "shm",
            path,
            "tmpfs",
            mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC,
            f"mode=1777,size={size_bytes}",
        )
    except OSError as err:
        raise PodMountError(f"mount pod shm at {path}: {err.strerror}") from None


def unmount_shm(path: str) -> None:
    """Unmount the pod's /dev/shm (MNT_DETACH; already unmounted or gone is fine)."""
    try:
        mounts.umount(path)
    except OSError as err:
        raise PodMountError(f"unmount pod shm {path}: {err.strerror}") from None
