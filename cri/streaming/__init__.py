"""The streaming server: exec, attach and port-forward over SPDY/3.1 and WebSocket.

What other areas use:
- `StreamingServer.get_exec_url(request)`, `.get_attach_url(request)`,
  `.get_port_forward_url(request)`: what the Exec/Attach/PortForward RPC handlers return
  (they validate the request and raise `StreamingRequestInvalidError` /
  `TooManyStreamingRequestsError`);
- `StreamingRuntime` (runtime.py): the one interface the containers area implements;
- `NetnsPortForwarder` (netns.py): `port_forward` for pods, given their netns path.
"""

from __future__ import annotations

from cri.streaming.errors import (
    StreamingError,
    StreamingRequestInvalidError,
    StreamingUnavailableError,
    TooManyStreamingRequestsError,
)
from cri.streaming.netns import NetnsConnectError, NetnsPortForwarder, connect_in_netns, relay
from cri.streaming.runtime import (
    DuplexStream,
    InputStream,
    OutputStream,
    StdioStreams,
    StreamClosedError,
    StreamingRuntime,
    TerminalSize,
    UnwiredStreamingRuntime,
)
from cri.streaming.server import StreamingServer

__all__ = [
    "StreamingServer",
    "StreamingRuntime",
    "UnwiredStreamingRuntime",
    "StdioStreams",
    "InputStream",
    "OutputStream",
    "DuplexStream",
    "TerminalSize",
    "StreamClosedError",
    "NetnsPortForwarder",
    "connect_in_netns",
    "relay",
    "StreamingError",
    "StreamingRequestInvalidError",
    "TooManyStreamingRequestsError",
    "StreamingUnavailableError",
    "NetnsConnectError",
]
