"""Leaf helpers shared by every crib package: error kinds, atomic files, logging.

`common` imports only the standard library and nothing else of crib, so that
`crib-runtime` (exec'd for every container) can use it without paying for imports.
"""
