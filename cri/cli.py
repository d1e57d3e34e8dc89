"""`crib`: the daemon (`crib` or `crib serve`) and its operator commands.

    crib [serve]   run the CRI server in the foreground
    crib config    print the effective configuration as YAML
    crib version   print crib's version

Common flags: --config FILE, --listen SOCKET, --root DIR, --state DIR, --log-level LEVEL.
Exit status: 0 done, 1 the daemon failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from common import log as logsetup
from common.errors import DomainError
from cri import __version__
from cri import config as configmod

EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logging.getLogger("crib")


def _common_flags() -> argparse.ArgumentParser:
    # SUPPRESS keeps a subcommand's unset flag from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="YAML configuration file")
    common.add_argument("--listen", default=argparse.SUPPRESS, help="unix socket path")
    common.add_argument("--root", default=argparse.SUPPRESS, help="persistent state directory")
    common.add_argument("--state", default=argparse.SUPPRESS, help="volatile state directory")
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, choices=logsetup.LEVELS, help="log level"
    )
    return common


def parser() -> argparse.ArgumentParser:
    """The argument parser of `crib`."""
    common = _common_flags()
    top = argparse.ArgumentParser(
        prog="crib", description="crib: a Kubernetes CRI runtime", parents=[common]
    )
    sub = top.add_subparsers(dest="command", metavar="{serve,config,version}")
    sub.add_parser("serve", parents=[common], help="run the CRI server (the default)")
    sub.add_parser("config", parents=[common], help="print the effective configuration")
    sub.add_parser("version", help="print the version")
    return top


def load_config(args: argparse.Namespace) -> configmod.Config:
    """The effective configuration from the file and the flags."""
    overrides: dict[str, object] = {}
    for flag in ("listen", "root", "state", "log_level"):
        if hasattr(args, flag):
            value = getattr(args, flag)
            if flag == "listen" and value.startswith("unix://"):
                value = value[len("unix://") :]
            overrides[flag] = value
    return configmod.load(getattr(args, "config", None), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crib` console script."""
    args = parser().parse_args(argv)
    command = args.command or "serve"
    if command == "version":
        print(f"crib {__version__}")
        return 0
    try:
        config = load_config(args)
    except configmod.ConfigError as err:
        print(f"crib: {err}", file=sys.stderr)
        return EXIT_USAGE
    if command == "config":
        sys.stdout.write(configmod.to_yaml(config))
        return 0
    logsetup.setup(config.log_level)
    from cri import server  # grpc is imported only when serving

    try:
        asyncio.run(server.run(config))
    except DomainError as err:
        log.error("%s", err)
        return EXIT_FAILURE
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled by the loop
        return 0
    return 0
