"""CNI: network configuration discovery and plugin invocation, as libcni does it.

config.py   conflist discovery (libcni order), versions, crib's default network
invoke.py   PluginExec (the exec seam) and SubprocessPluginExec (timeouts, errors)
network.py  ADD/DEL/CHECK/STATUS/GC of a network list; per-plugin stdin
result.py   ADD results of every spec version, the pod's IPs
cache.py    attachments kept for DEL/CHECK/GC (written before and after ADD)
manager.py  CniManager: network choice, pod setup/teardown, readiness, GC
"""
