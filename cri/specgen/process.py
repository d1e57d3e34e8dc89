"""The process section: args, working directory, terminal and environment; stop signal, log path.

Each `with_*` takes the spec being built and the inputs, changes the spec and returns it.
"""

from __future__ import annotations

import posixpath
import signal
from collections.abc import Iterable, Sequence
from typing import Any

from cri.api import api_pb2 as pb
from cri.specgen.errors import SpecInvalidError
from cri.specgen.inputs import Spec, SpecInputs

# The runtime spec version crib writes. crun 1.8 (Debian 12) refuses any ociVersion without
# "1.0" in it ("unknown version specified"); runc ignores the field. Fields crib uses from
# later spec versions (seccomp defaultErrnoRet, flags, listenerPath) are understood by both.
OCI_VERSION = "1.0.2"

# PATH for images that set none (containerd's and Docker's default).
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_spec(inputs: SpecInputs) -> Spec:
    """The skeleton every container spec starts from: version, root, empty process and linux."""
    return {
        "ociVersion": OCI_VERSION,
        "root": {"path": inputs.rootfs_path, "readonly": False},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [],
            "cwd": "/",
            "noNewPrivileges": False,
        },
        "mounts": [],
        "linux": {"namespaces": []},
    }


def image_list(image_config: Any, key: str) -> list[str]:
    """A list-of-strings field of the image config (Entrypoint, Cmd, Env); [] when absent."""
    value = image_config.get(key) if hasattr(image_config, "get") else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecInvalidError(f"image config {key} must be a list of strings, got {value!r}")
    return list(value)


def image_string(image_config: Any, key: str) -> str:
    """A string field of the image config (WorkingDir, User, StopSignal); "" when absent."""
    value = image_config.get(key) if hasattr(image_config, "get") else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecInvalidError(f"image config {key} must be a string, got {value!r}")
    return value


def merge_args(command: Sequence[str], args: Sequence[str], image_config: Any) -> list[str]:
    """process.args by Kubernetes' rules for command/args over the image's Entrypoint/Cmd.

        command set          -> command + args          (Entrypoint and Cmd both ignored)
        only args set        -> Entrypoint + args       (args replace Cmd)
        neither set          -> Entrypoint + Cmd
    An Entrypoint of [""] means "no entrypoint" (Dockerfile `ENTRYPOINT []` writes it).
    """
    if command:
        return [*command, *args]
    entrypoint = image_list(image_config, "Entrypoint")
    if entrypoint == [""]:
        entrypoint = []
    return [*entrypoint, *(args if args else image_list(image_config, "Cmd"))]


def with_process_args(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.args from the config's command/args and the image's Entrypoint/Cmd."""
    argv = merge_args(inputs.config.command, inputs.config.args, inputs.image_config)
    if not argv:
        raise SpecInvalidError(
            f"no command specified for container {inputs.config.metadata.name!r}: "
            "the config has no command or args and the image no Entrypoint or Cmd"
        )
    spec["process"]["args"] = argv
    return spec


def working_dir_of(inputs: SpecInputs) -> str:
    """process.cwd: the config's working_dir, else the image's WorkingDir, else "/"."""
    configured = inputs.config.working_dir
    if configured:
        if not configured.startswith("/"):
            raise SpecInvalidError(f"working_dir {configured!r} is not an absolute path")
        return posixpath.normpath(configured)
    image_dir = image_string(inputs.image_config, "WorkingDir")
    if image_dir:
        # Docker resolves a relative WORKDIR against "/" when it builds the image.
        return posixpath.normpath(posixpath.join("/", image_dir))
    return "/"


def with_working_dir(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.cwd (the caller creates it in the rootfs when missing: see GeneratedSpec)."""
    spec["process"]["cwd"] = working_dir_of(inputs)
    return spec


def with_terminal(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.terminal from tty; stdin and stdin_once are conmon's business, not the spec's."""
    spec["process"]["terminal"] = bool(inputs.config.tty)
    return spec


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def merge_env(layers: Iterable[Iterable[str]]) -> list[str]:
    """Merge KEY=VALUE layers in order: a later layer replaces a key in place, new keys append."""
    merged: list[str] = []
    index: dict[str, int] = {}
    for layer in layers:
        for entry in layer:
            key = _env_key(entry)
            if key in index:
                merged[index[key]] = entry
            else:
                index[key] = len(merged)
                merged.append(entry)
    return merged


def config_env(envs: Iterable[pb.KeyValue]) -> list[str]:
    """The config's envs as KEY=VALUE strings, refusing keys and values execve cannot carry."""
    out = []
    for kv in envs:
        if not kv.key or "=" in kv.key or "\0" in kv.key:
            raise SpecInvalidError(f"environment variable name {kv.key!r} is invalid")
        try:
            value = kv.value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecInvalidError(
                f"environment variable {kv.key!r} has a value that is not UTF-8"
            ) from err
        if "\0" in value:
            raise SpecInvalidError(f"environment variable {kv.key!r} contains a NUL byte")
        out.append(f"{kv.key}={value}")
    return out


def pod_hostname(inputs: SpecInputs) -> str:
    """The pod's hostname: the sandbox config's, else the node's (host network pods)."""
    return inputs.sandbox_config.hostname or inputs.host.hostname


def with_env(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.env: defaults (PATH, TERM with a tty, HOSTNAME), then the image's, then the config's.

    Later layers win per key and keep the first position of the key (containerd's order),
    so an image's PATH replaces the default one.
    """
    defaults = [DEFAULT_PATH_ENV]
    if inputs.config.tty:
        defaults.append("TERM=xterm")
    hostname = pod_hostname(inputs)
    if hostname:
        defaults.append(f"HOSTNAME={hostname}")
    spec["process"]["env"] = merge_env(
        [defaults, image_list(inputs.image_config, "Env"), config_env(inputs.config.envs)]
    )
    return spec


def parse_signal(value: str) -> int:
    """A signal number from "SIGTERM", "TERM", "15" or "SIGRTMIN+3"; ValueError otherwise."""
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.SIGRTMAX + 1:
            return number
        raise ValueError(f"{value!r} is not a signal")
    if not text.startswith("SIG"):
        text = "SIG" + text
    for base_name, base in (("SIGRTMIN", signal.SIGRTMIN), ("SIGRTMAX", signal.SIGRTMAX)):
        if text.startswith(base_name) and text != base_name:
            offset = int(text[len(base_name) :])
            number = base + offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
            raise ValueError(f"{value!r} is not a signal")
    if text in ("SIGRTMIN", "SIGRTMAX"):
        return int(signal.SIGRTMIN if text == "SIGRTMIN" else signal.SIGRTMAX)
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise ValueError(f"{value!r} is not a signal") from None


def cri_signal_number(cri_signal: int) -> int | None:
    """The number of a CRI `Signal` enum value; None for RUNTIME_DEFAULT."""
    if cri_signal == pb.RUNTIME_DEFAULT:
        return None
    name = pb.Signal.Name(cri_signal)
    # The enum spells SIGRTMIN+n as SIGRTMINPLUSn and SIGRTMAX-n as SIGRTMAXMINUSn.
    name = name.replace("PLUS", "+").replace("MINUS", "-")
    return parse_signal(name)


def stop_signal_of(inputs: SpecInputs) -> int:
    """The signal StopContainer sends first: config stop_signal, image StopSignal, SIGTERM."""
    configured = cri_signal_number(inputs.config.stop_signal)
    if configured is not None:
        return configured
    image_signal = image_string(inputs.image_config, "StopSignal")
    if image_signal:
        try:
            return parse_signal(image_signal)
        except ValueError:
            raise SpecInvalidError(f"image StopSignal {image_signal!r} is not a signal") from None
    return int(signal.SIGTERM)


def log_path_of(inputs: SpecInputs) -> str:
    """log_directory joined with log_path; "" (no log) when either is empty, as containerd."""
    directory = inputs.sandbox_config.log_directory
    relative = inputs.config.log_path
    if not directory or not relative:
        return ""
    # Joined like Go's filepath.Join (CRI-O, containerd): an absolute log_path stays under
    # the directory, and ".." may not climb out of it.
    joined = posixpath.normpath(directory + "/" + relative)
    root = posixpath.normpath(directory)
    if joined != root and not joined.startswith(root.rstrip("/") + "/"):
        raise SpecInvalidError(f"log_path {relative!r} leaves the log directory {directory!r}")
    return joined
