"""The compiled CRI stubs match the upstream definition, RPC by RPC and field by field.

tests/data/cri_api_v1_36.json holds the facts of kubernetes/cri-api v0.36.3 (services,
RPCs, messages, field numbers/types/labels, enums), extracted from the published
api.proto. Any drift of cri/api/api.proto (a renumbered field, a missing RPC, an
extra message) fails here.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from google.protobuf import descriptor as d

from cri.api import api_pb2

FACTS = json.loads(
    (pathlib.Path(__file__).parent.parent / "data" / "cri_api_v1_36.json").read_text()
)
PKG = FACTS["package"] + "."

SCALARS = {
    d.FieldDescriptor.TYPE_DOUBLE: "double",
    d.FieldDescriptor.TYPE_FLOAT: "float",
    d.FieldDescriptor.TYPE_INT64: "int64",
    d.FieldDescriptor.TYPE_UINT64: "uint64",
    d.FieldDescriptor.TYPE_INT32: "int32",
    d.FieldDescriptor.TYPE_FIXED64: "fixed64",
    d.FieldDescriptor.TYPE_FIXED32: "fixed32",
    d.FieldDescriptor.TYPE_BOOL: "bool",
    d.FieldDescriptor.TYPE_STRING: "string",
    d.FieldDescriptor.TYPE_BYTES: "bytes",
    d.FieldDescriptor.TYPE_UINT32: "uint32",
    d.FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    d.FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    d.FieldDescriptor.TYPE_SINT32: "sint32",
    d.FieldDescriptor.TYPE_SINT64: "sint64",
}


def _short(full_name: str) -> str:
    assert full_name.startswith(PKG), full_name
    return full_name[len(PKG) :]


def _field_type(field: d.FieldDescriptor) -> str:
    if field.message_type is not None:
        return _short(field.message_type.full_name)
    if field.enum_type is not None:
        return _short(field.enum_type.full_name)
    return SCALARS[field.type]


def _field_fact(field: d.FieldDescriptor) -> list[Any]:
    msg = field.message_type
    if msg is not None and msg.GetOptions().map_entry:
        key, value = msg.fields_by_name["key"], msg.fields_by_name["value"]
        return [field.name, field.number, f"map<{_field_type(key)},{_field_type(value)}>", "map"]
    if field.is_repeated:
        label = "repeated"
    elif field.has_presence and field.containing_oneof is not None:
        label = "optional"  # proto3 `optional` is a synthetic oneof
    else:
        label = "singular"
    return [field.name, field.number, _field_type(field), label]


def _messages(desc: d.Descriptor | d.FileDescriptor, prefix: str = "") -> dict[str, Any]:
    found = {}
    types = (
        desc.message_types_by_name.values()
        if isinstance(desc, d.FileDescriptor)
        else (desc.nested_types)
    )
    for msg in types:
        if msg.GetOptions().map_entry:
            continue
        name = prefix + msg.name
        found[name] = [_field_fact(f) for f in msg.fields]
        found.update(_messages(msg, name + "."))
    return found


def _enums() -> dict[str, Any]:
    found = {}
    for enum in api_pb2.DESCRIPTOR.enum_types_by_name.values():
        found[enum.name] = [[v.name, v.number] for v in enum.values]
    for msg in api_pb2.DESCRIPTOR.message_types_by_name.values():
        for enum in msg.enum_types:
            found[f"{msg.name}.{enum.name}"] = [[v.name, v.number] for v in enum.values]
    return found


def test_package_is_runtime_v1() -> None:
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"


def test_services_and_rpcs() -> None:
    ours = {}
    for service in api_pb2.DESCRIPTOR.services_by_name.values():
        ours[service.name] = [
            [
                m.name,
                _short(m.input_type.full_name),
                _short(m.output_type.full_name),
                m.server_streaming,
                m.client_streaming,
            ]
            for m in service.methods
        ]
    assert ours == FACTS["services"]


def test_rpc_count_is_41() -> None:
    # 35 RuntimeService + 6 ImageService RPCs in Kubernetes 1.36.
    assert sum(len(v) for v in FACTS["services"].values()) == 41
    assert len(api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods) == 35
    assert len(api_pb2.DESCRIPTOR.services_by_name["ImageService"].methods) == 6


def test_no_message_missing_or_extra() -> None:
    assert sorted(_messages(api_pb2.DESCRIPTOR)) == sorted(FACTS["messages"])


@pytest.mark.parametrize("message", sorted(FACTS["messages"]))
def test_fields(message: str) -> None:
    assert _messages(api_pb2.DESCRIPTOR)[message] == FACTS["messages"][message]


def test_enums() -> None:
    assert _enums() == FACTS["enums"]


@pytest.mark.parametrize(
    ("rpc", "service"),
    [
        ("RuntimeConfig", "RuntimeService"),
        ("UpdatePodSandboxResources", "RuntimeService"),
        ("StreamPodSandboxes", "RuntimeService"),
        ("StreamContainers", "RuntimeService"),
        ("StreamContainerStats", "RuntimeService"),
        ("StreamPodSandboxStats", "RuntimeService"),
        ("StreamPodSandboxMetrics", "RuntimeService"),
        ("StreamImages", "ImageService"),
    ],
)
def test_136_additions_present(rpc: str, service: str) -> None:
    assert rpc in api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name


def test_cgroup_driver_zero_is_systemd() -> None:
    # The trap RuntimeConfig must avoid: an unset driver reads as SYSTEMD.
    assert api_pb2.CgroupDriver.SYSTEMD == 0
    assert api_pb2.CgroupDriver.CGROUPFS == 1
