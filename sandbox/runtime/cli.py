"""`crib-runtime`: the runc command line subset conmon and the crib daemon use.

    crib-runtime [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] COMMAND
      create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] [--no-pivot]
             [--no-new-keyring] ID
      start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
      exec [--process FILE | ARGS...] [--pid-file F] [--detach] [--console-socket S] [--tty]
           [--cwd D] [--env K=V]... [--user UID[:GID]] [--additional-gids G]... [--cap C]... ID
      update --resources FILE|- ID | ps [--format table|json] ID [PS_ARGS...] | features

Flags take `--flag value` or `--flag=value`, as runc's (urfave/cli) do. Exit status 0 on
success, 1 on any error with ONE line on stderr (and a record in --log); `exec` without
--detach exits with the process's status (128+N if signalled), like runc.

Start-up is a budget (this runs for every container start): no argparse (it and gettext
cost ~3 ms), and each command imports only what it needs; `start` needs almost nothing.
"""

from __future__ import annotations

import os
import sys
import time

# Not `from typing import TYPE_CHECKING`: importing typing costs ~3 ms that `start` (which
# needs nothing else from it) would pay on every container start. mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ROOT = "/run/crib-runtime"
PROG = "crib-runtime"

# flag -> (destination, takes a value, may repeat); aliases share a destination.
_GLOBAL_FLAGS = {
    "--root": ("root", True, False),
    "--log": ("log", True, False),
    "--log-format": ("log_format", True, False),
    "--log-level": ("log_level", True, False),
    "--debug": ("debug", False, False),
    "--systemd-cgroup": ("systemd_cgroup", False, False),
    "--rootless": ("rootless", True, False),
    "--criu": ("criu", True, False),
    "--version": ("version", False, False),
    "-v": ("version", False, False),
    "--help": ("help", False, False),
    "-h": ("help", False, False),
}
_COMMAND_FLAGS: dict[str, dict[str, tuple[str, bool, bool]]] = {
    "create": {
        "--bundle": ("bundle", True, False),
        "-b": ("bundle", True, False),
        "--pid-file": ("pid_file", True, False),
        "--console-socket": ("console_socket", True, False),
        "--no-pivot": ("no_pivot", False, False),
        "--no-new-keyring": ("no_new_keyring", False, False),
        "--preserve-fds": ("preserve_fds", True, False),
    },
    "start": {},
    "state": {},
    "kill": {"--all": ("all", False, False), "-a": ("all", False, False)},
    "delete": {"--force": ("force", False, False), "-f": ("force", False, False)},
    "exec": {
        "--process": ("process", True, False),
        "-p": ("process", True, False),
        "--pid-file": ("pid_file", True, False),
        "--detach": ("detach", False, False),
        "-d": ("detach", False, False),
        "--console-socket": ("console_socket", True, False),
        "--tty": ("tty", False, False),
        "-t": ("tty", False, False),
        "--cwd": ("cwd", True, False),
        "--env": ("env", True, True),
        "-e": ("env", True, True),
        "--user": ("user", True, False),
        "-u": ("user", True, False),
        "--additional-gids": ("additional_gids", True, True),
        "-g": ("additional_gids", True, True),
        "--cap": ("cap", True, True),
        "-c": ("cap", True, True),
        "--no-new-privs": ("no_new_privs", False, False),
        "--preserve-fds": ("preserve_fds", True, False),
    },
    "update": {"--resources": ("resources", True, False), "-r": ("resources", True, False)},
    "ps": {"--format": ("format", True, False), "-f": ("format", True, False)},
    "features": {},
}
# Positional arguments after the flags: the container id, then what each command takes.
_NEEDS_ID = {"create", "start", "state", "kill", "delete", "exec", "update", "ps"}

USAGE = __doc__.split("\n\n")[1] if __doc__ else ""


class UsageError(Exception):
    """Bad command line; the message is printed with the usage hint."""


class Options:
    """Parsed command line: global flags, the command, its flags and positional arguments."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.command = ""
        self.positional: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name, default)
        return value if isinstance(value, str) else default

    def flag(self, name: str) -> bool:
        return bool(self.values.get(name))

    def many(self, name: str) -> list[str]:
        value = self.values.get(name, [])
        return list(value) if isinstance(value, list) else []


def _take(
    argv: list[str], index: int, table: dict[str, tuple[str, bool, bool]], options: Options
) -> int:
    """Consume the flag at argv[index]; returns the next index."""
    arg = argv[index]
    name, has_inline, inline = arg.partition("=")
    dest, takes_value, repeat = table[name]
    if takes_value:
        if has_inline:
            value = inline
        elif index + 1 < len(argv):
            index += 1
            value = argv[index]
        else:
            raise UsageError(f"flag needs an argument: {name}")
        if repeat:
            existing = options.values.setdefault(dest, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            options.values[dest] = value
    else:
        if has_inline:
            options.values[dest] = inline.lower() not in ("false", "0")
        else:
            options.values[dest] = True
    return index + 1


def parse_args(argv: Sequence[str]) -> Options:
    """Parse runc-style arguments (global flags, command, command flags, positionals)."""
    args = list(argv)
    options = Options()
    index = 0
    while index < len(args) and args[index].startswith("-"):
        name = args[index].partition("=")[0]
        if name not in _GLOBAL_FLAGS:
            raise UsageError(f"flag provided but not defined: {name}")
        index = _take(args, index, _GLOBAL_FLAGS, options)
    if index == len(args):
        return options
    options.command = args[index]
    index += 1
    table = _COMMAND_FLAGS.get(options.command)
    if table is None:
        raise UsageError(f"no such command: {options.command}")
    # Flags come before the container id; after it everything is positional (exec's args).
    while index < len(args):
        arg = args[index]
        if arg == "--":
            options.positional.extend(args[index + 1 :])
            break
        if arg.startswith("-") and len(arg) > 1 and not options.positional:
            name = arg.partition("=")[0]
            if name not in table:
                raise UsageError(f"flag provided but not defined: {name}")
            index = _take(args, index, table, options)
            continue
        options.positional.append(arg)
        if options.command in ("exec", "ps", "kill"):
            # exec ID ARGS...: the process's own flags are not ours.
            options.positional.extend(args[index + 1 :])
            break
        index += 1
    if options.command in _NEEDS_ID and not options.positional:
        raise UsageError(f'"{options.command}" requires a container id')
    return options


class Logger:
    """Writes warnings and errors to --log (text or JSON lines, as runc's logrus does)."""

    def __init__(self, path: str | None, log_format: str) -> None:
        self.path = path
        self.json = log_format == "json"

    def write(self, level: str, message: str) -> None:
        if not self.path:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp += f".{int(now % 1 * 1e9):09d}Z"
        if self.json:
            from common import jsonc

            line = jsonc.dumps({"level": level, "msg": message, "time": stamp})
        else:
            escaped = message.replace("\\", "\\\\").replace('"', '\\"')
            line = f'time="{stamp}" level={level} msg="{escaped}"'
        try:
            with open(self.path, "a") as log_file:
                log_file.write(line + "\n")
        except OSError:
            pass

    def warn(self, message: str) -> None:
        self.write("warning", message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crib-runtime` console script.

    Called without `argv` (the console script), it ends the process itself once stdio is
    flushed: interpreter finalization (module teardown, GC) costs milliseconds that every
    create/start would pay, and a runtime process holds nothing that needs it.
    """
    code = _main(argv)
    if argv is None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        sys.stderr.write(f"{PROG}: {err}\nusage:\n{USAGE}\n")
        return 1
    if options.flag("version"):
        sys.stdout.write(f"{PROG} version 0.1.0\nspec: 1.0.2\n")
        return 0
    if options.flag("help") or not options.command:
        sys.stdout.write(f"usage:\n{USAGE}\n")
        return 0 if options.flag("help") else 1
    logger = Logger(options.text("log"), options.text("log_format", "text") or "text")
    subject = options.positional[0] if options.command in _NEEDS_ID else ""
    try:
        return _dispatch(options, logger)
    except Exception as err:  # noqa: BLE001 - the CLI turns every failure into one line
        line = _one_line(err, logger)
        line = f"{options.command} {subject}: {line}" if subject else f"{options.command}: {line}"
        line = line.replace("\n", " ")
        logger.write("error", line)
        sys.stderr.write(f"{PROG}: {line}\n")
        return 1


def _one_line(err: Exception, logger: Logger) -> str:
    from common.errors import DomainError

    if isinstance(err, DomainError):
        return str(err)
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror or err}{where}"
    # A bug: still one line for conmon, the traceback in the log.
    import traceback

    logger.write("error", traceback.format_exc())
    return f"internal error: {type(err).__name__}: {err}"


def _dispatch(options: Options, logger: Logger) -> int:
    root = os.path.abspath(options.text("root", DEFAULT_ROOT) or DEFAULT_ROOT)
    command = options.command
    if options.flag("systemd_cgroup") and command != "features":
        from common.errors import UnimplementedError

        raise UnimplementedError(
            "--systemd-cgroup: the systemd cgroup driver is not supported, use cgroupfs"
        )
    if command == "start":
        from sandbox.runtime.start import start

        start(root, options.positional[0])
        return 0
    if command == "create":
        if options.text("preserve_fds", "0") not in ("0", None):
            from common.errors import UnimplementedError

            raise UnimplementedError("--preserve-fds is not supported")
        from sandbox.runtime.create import create

        create(
            root,
            options.positional[0],
            options.text("bundle", ".") or ".",
            pid_file=options.text("pid_file"),
            console_socket=options.text("console_socket"),
            no_pivot=options.flag("no_pivot"),
            no_new_keyring=options.flag("no_new_keyring"),
            warn=logger.warn,
        )
        return 0
    if command == "exec":
        return _exec(root, options)
    from common import jsonc
    from sandbox.runtime import commands

    container_id = options.positional[0] if options.positional else ""
    if command == "state":
        sys.stdout.write(jsonc.dumps(commands.state(root, container_id), indent=2) + "\n")
    elif command == "kill":
        signal_text = options.positional[1] if len(options.positional) > 1 else "SIGTERM"
        commands.kill(root, container_id, signal_text, options.flag("all"))
    elif command == "delete":
        commands.delete(root, container_id, options.flag("force"))
    elif command == "update":
        resources = options.text("resources")
        if resources is None:
            from common.errors import InvalidArgumentError

            raise InvalidArgumentError("update: --resources FILE|- is required")
        commands.update(root, container_id, resources, logger.warn)
    elif command == "ps":
        output_format = options.text("format", "table") or "table"
        out = commands.ps(root, container_id, output_format, options.positional[1:])
        sys.stdout.write(out + "\n")
    elif command == "features":
        sys.stdout.write(jsonc.dumps(commands.features(), indent=2) + "\n")
    return 0


def _exec(root: str, options: Options) -> int:
    # Every ExecSync probe runs this: the record is read once, nothing else imported.
    from sandbox.runtime import container
    from sandbox.runtime import exec as exec_command

    container_id = options.positional[0]
    record = container.load(root, container_id)
    try:
        gids = [int(g) for g in options.many("additional_gids")]
    except ValueError:
        from common.errors import InvalidArgumentError

        raise InvalidArgumentError("--additional-gids: not a number") from None
    process = exec_command.build_process(
        record,
        options.text("process"),
        options.positional[1:],
        cwd=options.text("cwd"),
        env=options.many("env"),
        user=options.text("user"),
        tty=options.flag("tty"),
        additional_gids=gids,
        cap_add=options.many("cap"),
        no_new_privs=options.flag("no_new_privs"),
    )
    if options.flag("tty") and options.text("process"):
        process["terminal"] = True
    return exec_command.run_exec(
        record,
        process,
        pid_file=options.text("pid_file"),
        detach=options.flag("detach"),
        console_socket=options.text("console_socket"),
    )


if __name__ == "__main__":
    sys.exit(main())
