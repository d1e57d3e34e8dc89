"""The OCI runtime spec and state as plain data, and a client for runc-compatible runtimes
(`client.py`: crib-runtime, runc, crun through their command line)."""
