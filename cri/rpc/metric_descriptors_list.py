"""ListMetricDescriptors: the cAdvisor-named metrics ListPodSandboxMetrics returns.

Fixed at start-up (api.proto: the list "should be static"): huge page metrics only with
the hugetlb controller, pressure metrics only with per-cgroup PSI (cri.stats.metrics).
"""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "ListMetricDescriptors"


async def handle(
    service: CriService, request: pb.ListMetricDescriptorsRequest
) -> pb.ListMetricDescriptorsResponse:
    """Every metric name with its help text and label keys."""
    return pb.ListMetricDescriptorsResponse(
        descriptors=[d.to_pb() for d in service.stats.descriptors]
    )
