"""A stand-in OCI runtime for `exec --detach` (no namespaces, no root): what the streaming
exec path asks of runc and crib-runtime, done with plain processes.

    oci_exec.py --root R exec --process F --pid-file P --detach [--console-socket S] ID

The process (F's args and env) is forked into a session of its own (runc's init calls
setsid too); with a console socket it gets a pty sized from F's consoleSize, and the master
is sent over the socket (SCM_RIGHTS). The runtime writes the pid file and exits 0, leaving
the process to the nearest subreaper. `FAKE_RUNTIME_DELAY_S` delays the pid file (a slow
runtime); args[0] == "no-such-binary" fails like runc, before any process exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import sys
import termios
import time


def main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    words = argv[1:]
    positional = []
    while words:
        word = words.pop(0)
        if word in ("--root", "--process", "--pid-file", "--console-socket"):
            options[word] = words.pop(0)
        elif word.startswith("--"):
            options[word] = ""
        else:
            positional.append(word)
    assert positional[:1] == ["exec"], positional
    assert "--detach" in options
    with open(options["--process"]) as f:
        process = json.load(f)
    args = process["args"]
    if args[0] == "no-such-binary":
        print(f'time="now" level=error msg="exec: \\"{args[0]}\\": not found"', file=sys.stderr)
        return 1
    master = slave = -1
    if "--console-socket" in options:
        master, slave = os.openpty()
        size = process.get("consoleSize")
        if size:
            winsize = struct.pack("HHHH", size["height"], size["width"], 0, 0)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if slave >= 0:
            os.close(master)
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
        env = dict(e.split("=", 1) for e in process.get("env", []))
        os.execvpe(args[0], args, env)
    if master >= 0:
        os.close(slave)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(options["--console-socket"])
            socket.send_fds(conn, [b"/dev/ptmx"], [master])
        os.close(master)
    time.sleep(float(os.environ.get("FAKE_RUNTIME_DELAY_S", "0")))
    with open(options["--pid-file"], "w") as f:
        f.write(str(pid))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
