"""RunPodSandbox input checks: every refusal is INVALID_ARGUMENT naming the field and value."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ErrorKind, InvalidArgumentError, UnimplementedError
from cri.api import api_pb2 as pb
from cri.config import Config, RuntimeHandlerConfig
from cri.pods import validate
from cri.pods.quantity import parse_quantity
from sandbox.pod.spec import PidMode

CONFIG = Config(
    runtimes={"crib": RuntimeHandlerConfig("crib-runtime"), "runc": RuntimeHandlerConfig("runc")}
)


def request(**fields: Any) -> pb.RunPodSandboxRequest:
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", namespace="default", uid="u1", attempt=2)
    )
    handler = fields.pop("runtime_handler", "")
    for key, value in fields.items():
        if isinstance(value, dict) and key not in ("labels", "annotations"):
            getattr(config, key).CopyFrom(value["msg"])
        elif isinstance(value, dict):
            getattr(config, key).update(value)
        elif isinstance(value, list):
            getattr(config, key).extend(value)
        else:
            setattr(config, key, value)
    return pb.RunPodSandboxRequest(config=config, runtime_handler=handler)


def linux(**fields: Any) -> dict[str, pb.LinuxPodSandboxConfig]:
    return {"msg": pb.LinuxPodSandboxConfig(**fields)}


def refused(req: pb.RunPodSandboxRequest) -> str:
    with pytest.raises(InvalidArgumentError) as err:
        validate.plan(req, CONFIG)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    return str(err.value)


def test_a_minimal_request_plans_defaults() -> None:
    plan = validate.plan(request(), CONFIG)
    assert plan.cri_name == "k8s_POD_web_default_u1_2"
    assert plan.runtime_handler == "crib"
    assert not plan.namespaces.host_network
    assert plan.namespaces.pid is PidMode.POD
    assert plan.bandwidth is None
    assert plan.uid_gid == (0, 0)
    assert plan.config_json["metadata"]["name"] == "web"


@pytest.mark.parametrize("field", ["name", "namespace", "uid"])
def test_metadata_fields_required(field: str) -> None:
    req = request()
    setattr(req.config.metadata, field, "")
    assert f"config.metadata.{field} is required" in refused(req)


def test_missing_config_and_metadata() -> None:
    assert "config is required" in refused(pb.RunPodSandboxRequest())
    assert "config.metadata is required" in refused(
        pb.RunPodSandboxRequest(config=pb.PodSandboxConfig(hostname="x"))
    )


def test_unknown_runtime_handler_named() -> None:
    message = refused(request(runtime_handler="kata"))
    assert "'kata'" in message
    assert "crib, runc" in message
    assert validate.plan(request(runtime_handler="runc"), CONFIG).runtime_handler == "runc"


@pytest.mark.parametrize(
    ("sysctls", "problem"),
    [
        ({"kernel.panic": "1"}, "not namespaced"),
        ({"vm.swappiness": "1"}, "not namespaced"),
        ({"net.ipv4.ip_forward": "1+kernel.core_pattern=|/x"}, "bad value"),
        ({"net.core.somaxconn": "1\n2"}, "bad value"),
        ({"net..x": "1"}, "bad sysctl name"),
        ({"../../etc": "1"}, "bad sysctl name"),
    ],
)
def test_sysctls_refused(sysctls: dict[str, str], problem: str) -> None:
    message = refused(request(linux=linux(sysctls=sysctls)))
    assert problem in message
    assert "config.linux.sysctls" in message


def test_namespaced_sysctls_accepted_and_host_namespaces_refuse_theirs() -> None:
    ok = {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "kernel.shmmax": "1024",
        "kernel.sem": "1 2 3 4",
    }
    assert validate.plan(request(linux=linux(sysctls=ok)), CONFIG).sysctls == ok
    host_net = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(network=pb.NamespaceMode.NODE)
    )
    message = refused(
        request(linux=linux(security_context=host_net, sysctls={"net.core.somaxconn": "1"}))
    )
    assert "host network namespace" in message
    host_ipc = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(ipc=pb.NamespaceMode.NODE)
    )
    assert "host IPC" in refused(
        request(linux=linux(security_context=host_ipc, sysctls={"kernel.shmmax": "1"}))
    )


def test_namespace_modes() -> None:
    ctx = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(
            network=pb.NamespaceMode.NODE, ipc=pb.NamespaceMode.NODE, pid=pb.NamespaceMode.CONTAINER
        )
    )
    plan = validate.plan(request(linux=linux(security_context=ctx)), CONFIG)
    assert plan.namespaces.host_network
    assert plan.namespaces.host_ipc
    assert plan.namespaces.pid is PidMode.CONTAINER
    target = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pb.NamespaceMode.TARGET)
    )
    assert "namespace_options.pid: TARGET" in refused(request(linux=linux(security_context=target)))


def test_user_namespaces_are_unimplemented() -> None:
    ctx = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(
            userns_options=pb.UserNamespace(mode=pb.NamespaceMode.POD)
        )
    )
    with pytest.raises(UnimplementedError):
        validate.plan(request(linux=linux(security_context=ctx)), CONFIG)


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (pb.PortMapping(container_port=0, host_port=80), "container_port: 0"),
        (pb.PortMapping(container_port=80, host_port=70000), "host_port: 70000"),
        (pb.PortMapping(container_port=80, host_ip="localhost"), "host_ip: 'localhost'"),
    ],
)
def test_port_mappings_checked(mapping: pb.PortMapping, problem: str) -> None:
    assert problem in refused(request(port_mappings=[mapping]))


def test_port_mappings_lowercase_protocol() -> None:
    plan = validate.plan(
        request(
            port_mappings=[
                pb.PortMapping(protocol=pb.Protocol.UDP, container_port=53, host_port=5353)
            ]
        ),
        CONFIG,
    )
    assert plan.port_mappings[0].protocol == "udp"
    assert plan.port_mappings[0].to_cni() == {
        "hostPort": 5353,
        "containerPort": 53,
        "protocol": "udp",
    }


def test_dns_and_hostname_checked() -> None:
    dns = {"msg": pb.DNSConfig(servers=["8.8.8.8; rm -rf"])}
    assert "dns_config.servers" in refused(request(dns_config=dns))
    dns = {"msg": pb.DNSConfig(searches=["a b"])}
    assert "dns_config.searches" in refused(request(dns_config=dns))
    assert "config.hostname" in refused(request(hostname="bad_host!"))
    assert "config.hostname" in refused(request(hostname="x" * 65))


def test_cgroup_parent_must_be_cgroupfs_path() -> None:
    assert "systemd slice" in refused(request(linux=linux(cgroup_parent="kubepods.slice")))
    assert "not an absolute" in refused(request(linux=linux(cgroup_parent="kubepods/pod1")))
    assert "not an absolute" in refused(request(linux=linux(cgroup_parent="/kubepods/../x")))


def test_bandwidth_annotations() -> None:
    plan = validate.plan(
        request(
            annotations={
                "kubernetes.io/ingress-bandwidth": "10M",
                "kubernetes.io/egress-bandwidth": "1Mi",
            }
        ),
        CONFIG,
    )
    assert plan.bandwidth is not None
    assert plan.bandwidth.ingress_rate_bps == 10_000_000
    assert plan.bandwidth.egress_rate_bps == 1 << 20
    message = refused(request(annotations={"kubernetes.io/ingress-bandwidth": "lots"}))
    assert "kubernetes.io/ingress-bandwidth" in message
    assert "'lots'" in message


def test_pod_resources_become_annotations() -> None:
    resources = pb.LinuxContainerResources(cpu_quota=50000, memory_limit_in_bytes=1 << 30)
    plan = validate.plan(request(linux=linux(resources=resources)), CONFIG)
    assert plan.resource_annotations == {
        "io.kubernetes.cri.sandbox-cpu-quota": "50000",
        "io.kubernetes.cri.sandbox-memory": str(1 << 30),
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [("10M", 10**7), ("1Mi", 2**20), ("500k", 500_000), ("1e6", 10**6), ("1.5G", 1_500_000_000)],
)
def test_quantities(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "M", "10 M", "10Q", "1..0"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)
