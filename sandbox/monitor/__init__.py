"""Per-container monitoring through conmon: spawn handshake, exit files, ExecSync, and the
process facts (start time, pidfd waits, subreaping) crib needs about what it does not parent."""
