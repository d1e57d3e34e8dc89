"""`crib-runtime`: the runc command line subset conmon and the crib daemon use.

    crib-runtime [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] COMMAND
      create --bundle DIR --pid-file FILE [--console-socket SOCK] [--no-pivot] [--no-new-keyring] ID
      start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
      exec [--process FILE | ARGS...] [--pid-file F] [--detach] [--console-socket S] [--tty]
           [--cwd D] [--env K=V]... [--user UID[:GID]] [--additional-gids G]... ID
      update --resources FILE|- ID | ps [--format table|json] ID | features

Exit status 0 on success, 1 on any error with ONE line on stderr (and a record in --log),
like runc; `exec` without --detach exits with the process's status (128+N if signalled).
Imports are lazy per command: this module is loaded for every container start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

DEFAULT_ROOT = "/run/crib-runtime"
PROG = "crib-runtime"


class Logger:
    """Writes warnings and errors to --log (text or JSON lines, as runc's logrus does)."""

    def __init__(self, path: str | None, log_format: str) -> None:
        self.path = path
        self.json = log_format == "json"

    def write(self, level: str, message: str) -> None:
        if not self.path:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self.json:
            line = json.dumps({"level": level, "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg={json.dumps(message)}'
        try:
            with open(self.path, "a") as log_file:
                log_file.write(line + "\n")
        except OSError:
            pass

    def warn(self, message: str) -> None:
        self.write("warning", message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (runc's flag names)."""
    parser = argparse.ArgumentParser(prog=PROG, description="crib's OCI runtime (runc CLI)")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    parser.add_argument("--log", default=None, help="log file")
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--systemd-cgroup", action="store_true")
    parser.add_argument("--rootless", default="auto")
    parser.add_argument("--version", "-v", action="store_true")
    commands = parser.add_subparsers(dest="command")

    create = commands.add_parser("create")
    create.add_argument("--bundle", "-b", default=".")
    create.add_argument("--pid-file", default=None)
    create.add_argument("--console-socket", default=None)
    create.add_argument("--no-pivot", action="store_true")
    create.add_argument("--no-new-keyring", action="store_true")
    create.add_argument("--preserve-fds", type=int, default=0)
    create.add_argument("container_id")

    for name in ("start", "state"):
        sub = commands.add_parser(name)
        sub.add_argument("container_id")

    kill = commands.add_parser("kill")
    kill.add_argument("--all", "-a", action="store_true")
    kill.add_argument("container_id")
    kill.add_argument("signal", nargs="?", default="SIGTERM")

    delete = commands.add_parser("delete")
    delete.add_argument("--force", "-f", action="store_true")
    delete.add_argument("container_id")

    exec_parser = commands.add_parser("exec")
    exec_parser.add_argument("--process", "-p", default=None)
    exec_parser.add_argument("--pid-file", default=None)
    exec_parser.add_argument("--detach", "-d", action="store_true")
    exec_parser.add_argument("--console-socket", default=None)
    exec_parser.add_argument("--tty", "-t", action="store_true")
    exec_parser.add_argument("--cwd", default=None)
    exec_parser.add_argument("--env", "-e", action="append", default=[])
    exec_parser.add_argument("--user", "-u", default=None)
    exec_parser.add_argument("--additional-gids", "-g", action="append", type=int, default=[])
    exec_parser.add_argument("--cap", "-c", action="append", default=[])
    exec_parser.add_argument("--no-new-privs", action="store_true")
    exec_parser.add_argument("--preserve-fds", type=int, default=0)
    exec_parser.add_argument("container_id")
    exec_parser.add_argument("args", nargs=argparse.REMAINDER)

    update = commands.add_parser("update")
    update.add_argument("--resources", "-r", required=True)
    update.add_argument("container_id")

    ps = commands.add_parser("ps")
    ps.add_argument("--format", "-f", default="table", choices=("table", "json"))
    ps.add_argument("container_id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)

    commands.add_parser("features")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crib-runtime` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"{PROG} version 0.1.0\nspec: 1.0.2")
        return 0
    if not args.command:
        parser.print_usage(sys.stderr)
        return 1
    logger = Logger(args.log, args.log_format)
    try:
        return _dispatch(args, logger)
    except Exception as err:  # noqa: BLE001 - the CLI turns every failure into one line
        from common.errors import DomainError

        if isinstance(err, DomainError):
            message = str(err)
        elif isinstance(err, OSError):
            where = f" {err.filename}" if err.filename else ""
            message = f"{err.strerror or err}{where}"
        else:
            # A bug: still one line for conmon, the traceback in the log.
            import traceback

            logger.write("error", traceback.format_exc())
            message = f"internal error: {type(err).__name__}: {err}"
        subject = getattr(args, "container_id", "")
        line = f"{args.command} {subject}: {message}" if subject else f"{args.command}: {message}"
        line = line.replace("\n", " ")
        logger.write("error", line)
        sys.stderr.write(f"{PROG}: {line}\n")
        return 1


def _dispatch(args: argparse.Namespace, logger: Logger) -> int:
    root = os.path.abspath(args.root)
    if args.systemd_cgroup and args.command != "features":
        from common.errors import UnimplementedError

        raise UnimplementedError(
            "--systemd-cgroup: the systemd cgroup driver is not supported, use cgroupfs"
        )
    command = args.command
    if command == "create":
        if args.preserve_fds:
            from common.errors import UnimplementedError

            raise UnimplementedError("--preserve-fds is not supported")
        from sandbox.runtime.create import create

        create(
            root,
            args.container_id,
            args.bundle,
            pid_file=args.pid_file,
            console_socket=args.console_socket,
            no_pivot=args.no_pivot,
            no_new_keyring=args.no_new_keyring,
            warn=logger.warn,
        )
        return 0
    from sandbox.runtime import commands

    if command == "start":
        commands.start(root, args.container_id)
    elif command == "state":
        sys.stdout.write(json.dumps(commands.state(root, args.container_id), indent=2) + "\n")
    elif command == "kill":
        commands.kill(root, args.container_id, args.signal, args.all)
    elif command == "delete":
        commands.delete(root, args.container_id, args.force)
    elif command == "update":
        commands.update(root, args.container_id, args.resources, logger.warn)
    elif command == "ps":
        sys.stdout.write(commands.ps(root, args.container_id, args.format, args.ps_args) + "\n")
    elif command == "features":
        sys.stdout.write(json.dumps(commands.features(), indent=2) + "\n")
    elif command == "exec":
        return _exec(root, args)
    return 0


def _exec(root: str, args: argparse.Namespace) -> int:
    from sandbox.runtime import container
    from sandbox.runtime import exec as exec_command

    record = container.load(root, args.container_id)
    trailing = list(args.args)
    if trailing and trailing[0] == "--":
        trailing = trailing[1:]
    process = exec_command.build_process(
        record,
        args.process,
        trailing,
        cwd=args.cwd,
        env=args.env,
        user=args.user,
        tty=args.tty,
        additional_gids=args.additional_gids,
        cap_add=args.cap,
        no_new_privs=args.no_new_privs,
    )
    if args.tty and args.process:
        process["terminal"] = True
    return exec_command.run_exec(
        root,
        args.container_id,
        process,
        pid_file=args.pid_file,
        detach=args.detach,
        console_socket=args.console_socket,
    )


if __name__ == "__main__":
    sys.exit(main())
