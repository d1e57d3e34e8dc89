"""Linux isolation for crib: namespaces, mounts, cgroups, capabilities, seccomp,
the OCI runtime `crib-runtime`, and pod pause processes.

No gRPC and no CRI types here: plain data in and out.
"""
