"""Pod sandboxes on the CRI side: records and their state machine, validation of
PodSandboxConfig, the set-up/teardown orchestration, recovery after a restart."""
