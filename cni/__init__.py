"""CNI: network configuration discovery and plugin invocation, as libcni does it."""
