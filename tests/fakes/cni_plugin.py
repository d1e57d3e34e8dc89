#!/usr/bin/env python3
"""A CNI plugin for tests, configured by its own keys in the network configuration:

    {"type": "<name of a symlink to this file>",
     "recordDir": "/tmp/...",   each call appends {command, env, conf} to <dir>/calls.jsonl
     "failOn": "ADD",           fail that command with code 100 and a message
     "sleepS": 3}               sleep first (slow networks, timeouts)

On ADD it passes prevResult through (so it can follow bridge in a chain) or, first in a
chain, returns an empty result. Stdlib only: it is exec'd by crib like any plugin.
"""

import json
import os
import sys
import time


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    conf = json.loads(sys.stdin.read() or "{}")
    if command == "VERSION":
        print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}))
        return 0
    record_dir = conf.get("recordDir")
    if record_dir:
        env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
        with open(os.path.join(record_dir, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"command": command, "env": env, "conf": conf}) + "\n")
    time.sleep(float(conf.get("sleepS", 0)))
    if conf.get("failOn") == command:
        print(
            json.dumps(
                {
                    "cniVersion": conf.get("cniVersion", "1.0.0"),
                    "code": 100,
                    "msg": "cpod test plugin fails " + command,
                    "details": "as configured (failOn)",
                }
            )
        )
        return 1
    if command == "ADD":
        print(json.dumps(conf.get("prevResult") or {"cniVersion": conf.get("cniVersion")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
