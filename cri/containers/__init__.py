"""Containers on the CRI side: records and their state machine, CreateContainer checks,
the lifecycle through conmon and the runtime handler (manager), exits, translation to CRI
messages, recovery after a restart."""
