"""Per-container monitoring through conmon: spawn handshake, exit files, attach socket, ctl fifo."""
