"""Linux primitives: syscalls (the only ctypes module), namespaces, mounts, cgroups,
capabilities, seccomp, devices, rlimits."""
