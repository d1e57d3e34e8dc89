"""Host-side pieces of a container: mounting its root filesystem and image views.

`rootfs` mounts what the image store describes (overlay data, mounting nothing itself) and
unmounts it; `mount_helper` is the exec'd process that mounts when the overlay data names
layers relative to a directory (the daemon never changes its own working directory).
"""
