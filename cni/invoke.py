"""Running one CNI plugin binary: the exec seam between crib and the plugins.

    crib ──exec(path, env{CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
    │                     CNI_ARGS, CNI_PATH, + crib's own environment})──► plugin
    │ stdin: the plugin's network configuration (JSON)
    ◄── stdout: result JSON (exit 0) or error JSON {code, msg, details} (exit != 0)
        stderr: informational, used as the message only when stdout is empty

(SPEC.md section 2 "Execution Protocol", libcni pkg/invoke/raw_exec.go behaviour.)
The plugin runs in crib's (the host's) namespaces; it enters the pod's netns itself.

`PluginExec` is the seam: `SubprocessPluginExec` runs real binaries with a per-call
timeout (the plugin's process group is killed when it expires); tests use a recording
fake (tests/fakes/cni.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
from collections.abc import Mapping
from typing import Protocol

from cni.errors import CniTimeoutError, plugin_error

log = logging.getLogger("crib.cni")

# libcni retries an exec that fails with "text file busy" (a plugin binary being
# replaced while we exec it) up to 5 times, 1 s apart.
ETXTBSY_RETRIES = 5
ETXTBSY_DELAY_S = 1.0
# Plugin output beyond this is not a CNI result; refuse rather than buffer without end.
MAX_OUTPUT_BYTES = 4 << 20


class PluginExec(Protocol):
    """Runs a plugin binary once and returns its stdout, or raises a `CniError`."""

    async def exec_plugin(
        self,
        plugin_path: str,
        stdin_data: bytes,
        env: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        """Run `plugin_path` with `env` (the CNI_* variables) and `stdin_data`.

        Returns stdout on exit status 0. A non-zero exit raises `CniPluginError` carrying
        the plugin's code, msg and details; a timeout kills the plugin and raises
        `CniTimeoutError`.
        """
        ...


class SubprocessPluginExec:
    """Runs plugins as child processes of crib (asyncio subprocesses, reaped by asyncio)."""

    async def exec_plugin(
        self,
        plugin_path: str,
        stdin_data: bytes,
        env: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        """See `PluginExec.exec_plugin`."""
        plugin = os.path.basename(plugin_path)
        command = env.get("CNI_COMMAND", "?")
        # The plugin inherits crib's environment (PATH: portmap and bridge run iptables),
        # with the CNI variables on top, as libcni does.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        full_env.update(env)
        for attempt in range(ETXTBSY_RETRIES + 1):
            try:
                process = await asyncio.create_subprocess_exec(
                    plugin_path,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=full_env,
                    # Its own process group, so a timeout kills whatever it started too.
                    start_new_session=True,
                    limit=MAX_OUTPUT_BYTES,
                )
                break
            except OSError as err:
                if err.errno == errno.ETXTBSY and attempt < ETXTBSY_RETRIES:
                    await asyncio.sleep(ETXTBSY_DELAY_S)
                    continue
                raise plugin_error(
                    plugin, command, 0, f"cannot exec {plugin_path}: {err.strerror}"
                ) from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(stdin_data), timeout_s)
        except TimeoutError:
            _kill_group(process.pid)
            await process.communicate()  # reap it and close its pipes
            raise CniTimeoutError(
                f"cni plugin {plugin} {command} did not finish within {timeout_s:g} s; killed it"
            ) from None
        except BaseException:
            # Cancelled (crib shutting down): never leave a plugin running on its own.
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(process.communicate())
            raise
        if stderr:
            log.debug(
                "cni plugin %s %s stderr: %s", plugin, command, stderr.decode(errors="replace")
            )
        if process.returncode == 0:
            return stdout
        raise decode_error(plugin, command, stdout, stderr, process.returncode or 0)


def decode_error(
    plugin: str, command: str, stdout: bytes, stderr: bytes, exit_status: int
) -> Exception:
    """The error a failed plugin reported: its JSON error on stdout, else its stderr text."""
    text = stdout.strip()
    if text:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "code" in doc:
            code = doc.get("code")
            return plugin_error(
                plugin,
                command,
                code if isinstance(code, int) and not isinstance(code, bool) else 0,
                str(doc.get("msg", "")),
                str(doc.get("details", "")),
            )
        return plugin_error(plugin, command, 0, text.decode(errors="replace"))
    message = stderr.decode(errors="replace").strip() or f"exit status {exit_status}"
    return plugin_error(plugin, command, 0, message)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
