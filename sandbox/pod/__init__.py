"""Pod sandboxes: the pause process, namespace pinning and teardown.

spec.py     the pause's OCI config (pure): namespaces per mode, no capabilities
rootfs.py   the read-only pause root holding only the static pause binary
pause.py    start/stop/delete of the pause under conmon and a runtime handler
pins.py     bind mounts of the pause's namespaces under <state>/ns/<kind>/<id>
files.py    hostname, resolv.conf, hosts and the per-pod /dev/shm
sysctl.py   which sysctls a pod may set, checked strictly (CVE-2022-0811)
cgroup.py   the pause's cgroup leaf under the pod cgroup, cleanup on v1 and v2
mounts.py   mount(2)/umount2(2) for pins and shm (the daemon's only mounts)
"""
