"""crib's CRI server: the composition root and the only package that speaks gRPC."""

__version__ = "0.1.0"
