"""crib-runtime: crib's OCI runtime with runc's command line."""
