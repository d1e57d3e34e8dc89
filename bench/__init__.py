"""Benchmarks (`make bench`): each module runs as a script and measures crib beside a peer.

A package so that the container, stats and stream benchmarks can import the runtimes and
helpers of bench/pod.py and bench/container.py instead of repeating them.
"""
