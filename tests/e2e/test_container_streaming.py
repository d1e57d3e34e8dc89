"""Exec, Attach and PortForward against real containers, for every runtime handler: the RPCs
mint URLs, the Python clients of cri/streaming speak SPDY and WebSocket to them as client-go
does, and the sessions reach processes in containers, conmon's attach socket and TCP servers
inside pods.

Objects are named `cstm-*` (network 10.125.0.0/16); the leak check covers them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import grpc
import pytest

from cri.api import api_pb2 as pb
from cri.streaming.client import (
    CommandResult,
    PortForwarder,
    RemoteCommand,
    UpgradeFailedError,
    WebSocketPortForward,
)
from tests import imagebuild as ib
from tests.e2e.containers import CtrCrib, ctr_crib, wait_for
from tests.e2e.pods import echo_server
from tests.e2e.streaming.helpers import round_trip
from tests.handlers import HANDLERS
from tests.leakcheck import leak_check
from tests.registry import Registry, running_registry

PREFIX = "cstm"
REPO = "cstm"
TEST_RANGE = "10.125."
RUNNING = pb.ContainerState.CONTAINER_RUNNING
EXITED = pb.ContainerState.CONTAINER_EXITED
ECHO_PORT = 7777
SCENARIO_TIMEOUT_S = 180.0
T = TypeVar("T")

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_stm_leaks")]

APPLETS = ("stty", "sha256sum", "dd", "tr", "setsid", "printf", "yes")
IMAGES = {
    "busybox": lambda: ib.busybox_image(
        extra_layers=[ib.Layer([ib.symlink(f"bin/{a}", "busybox") for a in APPLETS])]
    ),
    "app-user": lambda: ib.busybox_image(user="app"),
}


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """A registry holding this module's images."""
    with running_registry() as reg:
        for name, build in IMAGES.items():
            ib.push_image(reg, f"{REPO}/{name}", "1", build())
        yield reg


@pytest.fixture(scope="module", params=HANDLERS)
def crib(request: pytest.FixtureRequest, registry: Registry) -> Iterator[CtrCrib]:
    """A crib per runtime handler (prefix cstm), shared by the module's tests."""
    with ctr_crib(request.param, registry, prefix=PREFIX, repo=REPO) as crib:
        yield crib


@pytest.fixture(scope="module")
def no_stm_leaks() -> Iterator[None]:
    """Fail the module's last test if it left cstm-named kernel objects behind."""
    yield from leak_check(PREFIX, TEST_RANGE)


def run(scenario: Awaitable[T]) -> T:
    """Run an async scenario (the streaming clients are asyncio) with a deadline."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S)

    return asyncio.run(bounded())


def running(crib: CtrCrib, command: list[str], **fields: Any) -> tuple[str, str]:
    """A pod with one running container; (sandbox id, container id)."""
    sandbox_id, pod = crib.run_pod()
    name = f"c{secrets.token_hex(3)}"
    container_id = crib.run(sandbox_id, pod, crib.config(name, command, **fields))
    crib.wait_state(container_id, RUNNING)
    return sandbox_id, container_id


@pytest.fixture
def sleeper(crib: CtrCrib) -> Iterator[str]:
    """A running busybox container for exec tests; its pod is removed afterwards."""
    sandbox_id, container_id = running(crib, ["sleep", "100000"])
    yield container_id
    crib.pods.remove_pod(sandbox_id)


def exec_url(crib: CtrCrib, container_id: str, cmd: list[str], **flags: bool) -> str:
    request = pb.ExecRequest(container_id=container_id, cmd=cmd, **flags)
    return str(crib.runtime().Exec(request).url)


def attach_url(crib: CtrCrib, container_id: str, **flags: bool) -> str:
    request = pb.AttachRequest(container_id=container_id, **flags)
    return str(crib.runtime().Attach(request).url)


def port_forward_url(crib: CtrCrib, sandbox_id: str, ports: tuple[int, ...] = ()) -> str:
    request = pb.PortForwardRequest(pod_sandbox_id=sandbox_id, port=list(ports))
    return str(crib.runtime().PortForward(request).url)


async def spdy_exec(
    crib: CtrCrib, container_id: str, cmd: list[str], stdin: bytes | None = None
) -> CommandResult:
    """An exec over SPDY as `crictl exec` makes it, stdin sent then half-closed."""
    url = exec_url(crib, container_id, cmd, stdin=stdin is not None, stdout=True, stderr=True)
    session = await RemoteCommand.spdy(url, stdin=stdin is not None)
    if stdin is not None:
        await session.write_stdin(stdin)
        await session.close_stdin()
    return await session.finish()


async def read_until(session: RemoteCommand, pattern: str, timeout_s: float = 20.0) -> str:
    """Output until `pattern` (a regex) appears; returns all of it."""
    text = ""
    async with asyncio.timeout(timeout_s):
        while not re.search(pattern, text):
            data = await session.read("stdout")
            assert data, f"output ended before {pattern!r}: {text!r}"
            text += data.decode(errors="replace")
    return text


def processes_named(word: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `word` as an argument."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if word.encode() in argv and state != b"Z":
            found.append(int(entry))
    return found


# -- the RPCs -------------------------------------------------------------------------------------


def test_rpcs_validate_before_minting(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    container_id = crib.run(sandbox_id, pod, crib.config("done", ["sh", "-c", "exit 0"]))
    crib.wait_state(container_id, EXITED)
    rt = crib.runtime()
    cases = [
        (rt.Exec, pb.ExecRequest(container_id="nope", cmd=["ls"], stdout=True), "NOT_FOUND"),
        (rt.Attach, pb.AttachRequest(container_id="nope", stdout=True), "NOT_FOUND"),
        (rt.PortForward, pb.PortForwardRequest(pod_sandbox_id="nope"), "NOT_FOUND"),
        (
            rt.Exec,
            pb.ExecRequest(container_id=container_id, cmd=["ls"], stdout=True),
            "FAILED_PRECONDITION",
        ),
        (
            rt.Attach,
            pb.AttachRequest(container_id=container_id, stdout=True),
            "FAILED_PRECONDITION",
        ),
    ]
    for call, request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            call(request)
        assert err.value.code() == getattr(grpc.StatusCode, code), (request, err.value.details())
    crib.pods.stop_pod(sandbox_id)
    with pytest.raises(grpc.RpcError) as err:
        rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=sandbox_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    crib.pods.remove_pod(sandbox_id)


def test_rpcs_refuse_bad_requests(crib: CtrCrib, sleeper: str) -> None:
    rt = crib.runtime()
    bad = [
        (rt.Exec, pb.ExecRequest(container_id=sleeper, cmd=["ls"], tty=True, stderr=True), "tty"),
        (rt.Exec, pb.ExecRequest(container_id=sleeper, cmd=["ls"]), "one of stdin"),
        (rt.Exec, pb.ExecRequest(container_id=sleeper, stdout=True), "cmd"),
        (rt.Attach, pb.AttachRequest(container_id=sleeper, tty=True, stderr=True), "tty"),
        (rt.Attach, pb.AttachRequest(container_id=sleeper), "one of stdin"),
    ]
    for call, request, words in bad:
        with pytest.raises(grpc.RpcError) as err:
            call(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in err.value.details()
    # A unique id prefix names the container, as for every other RPC; the URL is absolute.
    url = rt.Exec(pb.ExecRequest(container_id=sleeper[:12], cmd=["ls"], stdout=True)).url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/exec/[A-Za-z0-9_-]{8}", url), url


# -- exec -----------------------------------------------------------------------------------------


def test_exec_output_exit_codes_and_errors(crib: CtrCrib, sleeper: str) -> None:
    async def scenario() -> None:
        result = await spdy_exec(crib, sleeper, ["echo", "hi"])
        assert (result.stdout, result.stderr, result.exit_code) == (b"hi\n", b"", 0)
        assert result.status == {"status": "Success"}
        result = await spdy_exec(crib, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 3)
        assert result.status is not None
        assert result.status["reason"] == "NonZeroExitCode"
        result = await spdy_exec(crib, sleeper, ["sh", "-c", "kill -9 $$"])
        assert result.exit_code == 137  # 128 + SIGKILL
        result = await spdy_exec(crib, sleeper, ["no-such-binary"])
        assert result.exit_code is None
        assert result.status is not None
        assert result.status["reason"] == "InternalError"
        assert "no-such-binary" in str(result.status["message"])
        assert result.stderr == b""  # the runtime's complaint is the error, not output

    run(scenario())


def test_exec_stdin_reaches_eof_and_large_output_arrives(crib: CtrCrib, sleeper: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def scenario() -> None:
        result = await spdy_exec(crib, sleeper, ["cat"], stdin=payload)
        assert result.exit_code == 0
        assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(payload).digest()
        result = await spdy_exec(crib, sleeper, ["wc", "-c"], stdin=b"12345")
        assert result.stdout.split() == [b"5"]
        # Interactive: the process answers each line, and sees EOF the moment stdin closes.
        url = exec_url(crib, sleeper, ["sh", "-c", "while read l; do echo got $l; done; echo eof"],
                       stdin=True, stdout=True)  # fmt: skip
        session = await RemoteCommand.spdy(url, stdin=True, stderr=False)
        await session.write_stdin(b"one\n")
        assert await read_until(session, "got one\n") == "got one\n"
        await session.close_stdin()
        result = await session.finish()
        assert (result.stdout, result.exit_code) == (b"eof\n", 0)

    run(scenario())


def test_exec_pipes_belong_to_the_process_user(crib: CtrCrib) -> None:
    sandbox_id, container_id = running(crib, ["sleep", "100000"], image="app-user")

    async def scenario() -> None:
        # A non-root process can reopen its stdio (/proc/self/fd), as nginx-style images do.
        result = await spdy_exec(
            crib, container_id, ["sh", "-c", "id -u; cat /dev/stdin > /dev/stdout"], stdin=b"x\n"
        )
        assert (result.stdout, result.stderr, result.exit_code) == (b"1000\nx\n", b"", 0)

    run(scenario())
    crib.pods.remove_pod(sandbox_id)


def test_exec_tty_is_sized_and_resized(crib: CtrCrib, sleeper: str) -> None:
    async def scenario() -> None:
        url = exec_url(crib, sleeper, ["sh"], stdin=True, stdout=True, tty=True)
        session = await RemoteCommand.spdy(url, stdin=True, tty=True)
        await session.resize(100, 40)  # client-go sends the size right after the streams
        await session.write_stdin(b"stty size; echo TERM=$TERM; tty\n")
        text = await read_until(session, r"/dev/pts/\d+")
        assert "40 100" in text
        assert "TERM=xterm" in text
        await session.resize(132, 50)
        await asyncio.sleep(0.2)
        await session.write_stdin(b"stty size\n")
        assert "50 132" in await read_until(session, r"50 132")
        await session.write_stdin(b"exit 5\n")
        result = await session.finish()
        assert result.exit_code == 5
        assert result.stderr == b""

    run(scenario())


def test_exec_tty_stdin_close_is_eof(crib: CtrCrib, sleeper: str) -> None:
    async def scenario() -> None:
        url = exec_url(crib, sleeper, ["sh", "-c", "cat; echo done"], stdin=True, stdout=True,
                       tty=True)  # fmt: skip
        session = await RemoteCommand.spdy(url, stdin=True, tty=True)
        await session.write_stdin(b"line\n")
        await session.close_stdin()
        result = await session.finish()
        assert result.exit_code == 0
        assert result.stdout.replace(b"\r\n", b"\n").endswith(b"line\ndone\n"), result.stdout

    run(scenario())


def test_exec_over_websocket_v5(crib: CtrCrib, sleeper: str) -> None:
    async def scenario() -> None:
        url = exec_url(crib, sleeper, ["sh", "-c", "cat; echo err >&2; exit 2"], stdin=True,
                       stdout=True, stderr=True)  # fmt: skip
        session = await RemoteCommand.websocket(url)
        assert session.protocol == "v5.channel.k8s.io"
        await session.write_stdin(b"through websocket\n")
        await session.close_stdin()  # the v5 CLOSE signal
        result = await session.finish()
        assert (result.stdout, result.stderr) == (b"through websocket\n", b"err\n")
        assert result.exit_code == 2

    run(scenario())


def test_twenty_concurrent_exec_sessions(crib: CtrCrib, sleeper: str) -> None:
    async def one(index: int) -> None:
        payload = f"session {index}\n".encode() * 1000
        result = await spdy_exec(crib, sleeper, ["sh", "-c", f"cat; exit {index}"], stdin=payload)
        assert result.stdout == payload
        assert result.exit_code == index

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(20)))

    run(scenario())


def test_a_used_url_is_refused(crib: CtrCrib, sleeper: str) -> None:
    async def scenario() -> None:
        url = exec_url(crib, sleeper, ["true"], stdout=True)
        result = await (await RemoteCommand.spdy(url, stderr=False)).finish()
        assert result.exit_code == 0
        with pytest.raises(UpgradeFailedError, match="404"):
            await RemoteCommand.spdy(url, stderr=False)

    run(scenario())


def test_a_client_that_leaves_kills_its_exec(crib: CtrCrib, sleeper: str) -> None:
    marker = str(4000 + secrets.randbelow(999))

    async def scenario() -> None:
        url = exec_url(crib, sleeper, ["sleep", marker], stdout=True)
        session = await RemoteCommand.spdy(url, stderr=False)
        await asyncio.to_thread(wait_for, lambda: processes_named(marker), 10.0)
        await session.close()

    run(scenario())
    wait_for(lambda: not processes_named(marker), 10.0, "exec outlived its client")


def test_stop_kills_execs_nobody_reads(crib: CtrCrib) -> None:
    """user-asks #6: an exec whose output nobody reads must not hold up StopContainer, and
    execs die with their container (in the pod's shared pid namespace too)."""
    sandbox_id, container_id = running(crib, ["sleep", "100000"])
    marker = str(5000 + secrets.randbelow(999))

    async def scenario() -> None:
        flood = await RemoteCommand.spdy(
            exec_url(crib, container_id, ["yes"], stdout=True), stderr=False
        )  # never read
        sleeping = await RemoteCommand.spdy(
            exec_url(crib, container_id, ["sleep", marker], stdout=True), stderr=False
        )
        await asyncio.to_thread(wait_for, lambda: processes_named(marker), 10.0)
        await asyncio.to_thread(crib.stop, container_id, 2)
        result = await sleeping.finish()
        assert result.exit_code == 137
        await flood.close()

    run(scenario())
    assert crib.state(container_id) == EXITED
    wait_for(lambda: not processes_named(marker) and not processes_named("yes"), 10.0)
    crib.pods.remove_pod(sandbox_id)


# -- attach ---------------------------------------------------------------------------------------


def test_attach_stdio_with_stdin_once(crib: CtrCrib) -> None:
    sandbox_id, container_id = running(crib, ["sh"], stdin=True, stdin_once=True)

    async def scenario() -> None:
        url = attach_url(crib, container_id, stdin=True, stdout=True, stderr=True)
        session = await RemoteCommand.spdy(url, stdin=True)
        await session.write_stdin(b"echo to-out; echo to-err >&2\n")
        assert await read_until(session, "to-out\n") == "to-out\n"
        assert await session.read("stderr") == b"to-err\n"
        await session.close_stdin()  # stdin_once: the container's stdin closes, sh exits
        result = await session.finish()
        assert result.status == {"status": "Success"}

    run(scenario())
    assert crib.wait_state(container_id, EXITED).exit_code == 0
    crib.pods.remove_pod(sandbox_id)


def test_attach_leaves_stdin_open_without_stdin_once(crib: CtrCrib) -> None:
    sandbox_id, container_id = running(crib, ["cat"], stdin=True, stdin_once=False)

    async def attach_once(line: bytes, websocket: bool) -> None:
        url = attach_url(crib, container_id, stdin=True, stdout=True, stderr=True)
        session = await (
            RemoteCommand.websocket(url) if websocket else RemoteCommand.spdy(url, stdin=True)
        )
        await session.write_stdin(line)
        assert await read_until(session, line.decode()) == line.decode()
        await session.close_stdin()  # detaches; the container's stdin stays open
        assert (await session.finish()).status == {"status": "Success"}

    async def scenario() -> None:
        await attach_once(b"first\n", websocket=False)
        await attach_once(b"second\n", websocket=True)

    run(scenario())
    assert crib.state(container_id) == RUNNING
    crib.pods.remove_pod(sandbox_id)


def test_attach_tty_resizes_through_conmon(crib: CtrCrib) -> None:
    sandbox_id, container_id = running(crib, ["sh"], stdin=True, tty=True)

    async def scenario() -> None:
        url = attach_url(crib, container_id, stdin=True, stdout=True, tty=True)
        session = await RemoteCommand.spdy(url, stdin=True, tty=True)
        await session.resize(90, 30)
        await asyncio.sleep(0.3)
        await session.write_stdin(b"stty size\n")
        await read_until(session, "30 90")
        await session.resize(91, 31)
        await asyncio.sleep(0.3)
        await session.write_stdin(b"stty size\n")
        await read_until(session, "31 91")
        await session.write_stdin(b"exit 0\n")  # the container ends: so does the session
        assert (await session.finish()).status == {"status": "Success"}

    run(scenario())
    crib.wait_state(container_id, EXITED)
    crib.pods.remove_pod(sandbox_id)


# -- port-forward ---------------------------------------------------------------------------------


@pytest.fixture
def echo_pod(crib: CtrCrib) -> Iterator[str]:
    """A pod whose container echoes every TCP connection on ECHO_PORT (busybox nc + cat)."""
    sandbox_id, _container_id = running(crib, ["nc", "-ll", "-p", str(ECHO_PORT), "-e", "cat"])
    yield sandbox_id
    crib.pods.remove_pod(sandbox_id)


def test_port_forward_100_mib_with_checksum(crib: CtrCrib, echo_pod: str) -> None:
    payload = os.urandom(100 * 1024 * 1024)

    async def scenario() -> None:
        forwarder = await PortForwarder.spdy(port_forward_url(crib, echo_pod))
        echoed = await round_trip(forwarder, ECHO_PORT, payload)
        assert len(echoed) == len(payload)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        # Several connections over one session at once.
        small = [os.urandom(100_000 + i) for i in range(8)]
        assert await asyncio.gather(*(round_trip(forwarder, ECHO_PORT, p) for p in small)) == small
        await forwarder.close()

    run(scenario())


def test_port_forward_over_websockets(crib: CtrCrib, echo_pod: str) -> None:
    async def scenario() -> None:
        # crictl port-forward --transport websocket: SPDY tunnelled in WebSocket messages.
        forwarder = await PortForwarder.tunnel(port_forward_url(crib, echo_pod))
        assert await round_trip(forwarder, ECHO_PORT, b"tunnelled" * 10000) == b"tunnelled" * 10000
        await forwarder.close()
        # WebSocket channels: the ports come from the request.
        url = port_forward_url(crib, echo_pod, (ECHO_PORT,))
        channels = await WebSocketPortForward.connect(url, [ECHO_PORT])
        assert await channels.port_prefix(0) == (ECHO_PORT, ECHO_PORT)
        await channels.write(0, b"over channels")
        received = b""
        while received != b"over channels":
            data = await channels.read_channel(0)
            assert data, received
            received += data
        await channels.close()

    run(scenario())


def test_port_forward_to_a_closed_port_reports_it(crib: CtrCrib, echo_pod: str) -> None:
    async def scenario() -> None:
        forwarder = await PortForwarder.spdy(port_forward_url(crib, echo_pod))
        connection = await forwarder.connect(ECHO_PORT + 1)
        message = await connection.error()
        assert f"localhost:{ECHO_PORT + 1}" in message
        assert await round_trip(forwarder, ECHO_PORT, b"still fine") == b"still fine"
        await forwarder.close()

    run(scenario())


def test_port_forward_into_a_host_network_pod_uses_host_loopback(crib: CtrCrib) -> None:
    host_network = pb.LinuxPodSandboxConfig(
        security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.NamespaceMode.NODE)
        )
    )
    sandbox_id, _ = crib.run_pod(linux=host_network)

    async def scenario(port: int) -> None:
        forwarder = await PortForwarder.spdy(port_forward_url(crib, sandbox_id))
        connection = await forwarder.connect(port)
        await connection.write(b"ping")
        reply = b""
        while data := await connection.read():
            reply += data
        assert reply == b"ping from 127.0.0.1"
        await forwarder.close()

    with echo_server("127.0.0.1") as port:
        run(scenario(port))
    crib.pods.remove_pod(sandbox_id)
