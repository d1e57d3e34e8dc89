"""Pod sandboxes: the pause process, namespace pinning and teardown."""
