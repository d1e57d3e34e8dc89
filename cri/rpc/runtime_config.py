"""RuntimeConfig: the cgroup driver crib really uses, so kubelet matches it.

The enum's zero value is SYSTEMD: the field must always be set explicitly.
"""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "RuntimeConfig"

DRIVERS = {"cgroupfs": pb.CgroupDriver.CGROUPFS, "systemd": pb.CgroupDriver.SYSTEMD}


async def handle(service: CriService, request: pb.RuntimeConfigRequest) -> pb.RuntimeConfigResponse:
    """Report the configured cgroup driver."""
    driver = DRIVERS[service.config.cgroup_driver]
    return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=driver))
