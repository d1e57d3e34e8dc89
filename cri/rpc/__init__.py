"""One module per RPC; each has `RPC` (the method name) and `handle(service, request)`.

`HANDLERS` is the table the server registers. An RPC of the CRI API that is not in
it answers UNIMPLEMENTED naming the RPC (see `cri.server`).
"""

from __future__ import annotations

from types import ModuleType

from cri.rpc import (
    container_attach,
    container_create,
    container_events,
    container_exec,
    container_exec_sync,
    container_list,
    container_remove,
    container_reopen_log,
    container_start,
    container_stats,
    container_stats_list,
    container_stats_stream,
    container_status,
    container_stop,
    container_stream,
    container_update_resources,
    image_fs_info,
    image_list,
    image_pull,
    image_remove,
    image_status,
    image_stream,
    metric_descriptors_list,
    runtime_config,
    runtime_config_update,
    runtime_status,
    runtime_version,
    sandbox_list,
    sandbox_metrics_list,
    sandbox_metrics_stream,
    sandbox_port_forward,
    sandbox_remove,
    sandbox_run,
    sandbox_stats,
    sandbox_stats_list,
    sandbox_stats_stream,
    sandbox_status,
    sandbox_stop,
    sandbox_stream,
    sandbox_update_resources,
)

_MODULES: tuple[ModuleType, ...] = (
    runtime_version,
    runtime_status,
    runtime_config,
    runtime_config_update,
    # ImageService
    image_list,
    image_stream,
    image_status,
    image_pull,
    image_remove,
    image_fs_info,
    sandbox_run,
    sandbox_stop,
    sandbox_remove,
    sandbox_status,
    sandbox_list,
    sandbox_update_resources,
    container_create,
    container_start,
    container_stop,
    container_remove,
    container_status,
    container_list,
    container_update_resources,
    container_reopen_log,
    container_exec_sync,
    # Streaming: each mints a URL served by cri/streaming.
    container_exec,
    container_attach,
    sandbox_port_forward,
    # Observability: stats, metrics, events, and the chunked Stream* lists (KEP-5825)
    container_stats,
    container_stats_list,
    container_stats_stream,
    sandbox_stats,
    sandbox_stats_list,
    sandbox_stats_stream,
    metric_descriptors_list,
    sandbox_metrics_list,
    sandbox_metrics_stream,
    container_events,
    sandbox_stream,
    container_stream,
)

HANDLERS = {module.RPC: module.handle for module in _MODULES}
