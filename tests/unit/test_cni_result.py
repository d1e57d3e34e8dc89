"""CNI results of every spec version crib speaks, and which addresses are the pod's."""

from __future__ import annotations

import pytest

from cni.errors import CniResultError
from cni.result import parse_result


def test_1_0_0_result_with_bridge_veth_and_sandbox_interface() -> None:
    result = parse_result(
        {
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/crib/ns/net/x"},
            ],
            "ips": [
                {"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
                {"address": "fd00::5/64", "interface": 2},
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.0.0.10"]},
        }
    )
    assert result.pod_ips() == ["10.88.0.5", "fd00::5"]
    assert result.routes[0].dst == "0.0.0.0/0"
    assert result.dns.nameservers == ("10.0.0.10",)


def test_addresses_on_host_interfaces_are_not_the_pods() -> None:
    result = parse_result(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br0"}, {"name": "eth0", "sandbox": "/ns"}],
            "ips": [
                {"address": "10.1.0.1/24", "interface": 0},
                {"address": "10.1.0.2/24", "interface": 1},
            ],
        }
    )
    assert result.pod_ips() == ["10.1.0.2"]


def test_0_4_0_result_with_version_field_and_no_interface_index() -> None:
    result = parse_result(
        {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.2.0.7/24"}]}
    )
    assert result.pod_ips() == ["10.2.0.7"]


def test_legacy_0_2_0_result() -> None:
    result = parse_result(
        {"cniVersion": "0.2.0", "ip4": {"ip": "10.3.0.9/24", "gateway": "10.3.0.1"}}
    )
    assert result.pod_ips() == ["10.3.0.9"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "not a JSON object"),
        ({"ips": []}, "no cniVersion"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}, "CIDR"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": "0"}]}, "index"),
        ({"cniVersion": "1.0.0", "interfaces": ["eth0"]}, "interface is not an object"),
    ],
)
def test_bad_results_are_named(raw: object, problem: str) -> None:
    with pytest.raises(CniResultError) as err:
        parse_result(raw)
    assert problem in str(err.value)
