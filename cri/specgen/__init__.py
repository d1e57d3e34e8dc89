"""CRI container config → OCI runtime spec, as small pure functions."""
