"""The package boundaries of DESIGN.md, checked on the source.

- `common` imports nothing of crib;
- `sandbox`, `image` and `cni` import only `common` (never each other, never `cri`);
- only `cri` imports grpc/protobuf;
- `sandbox.runtime` (crib-runtime, exec'd per container) imports only the standard
  library, `sandbox`, `common` and the seccomp binding.
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
OURS = {"cri", "sandbox", "image", "cni", "common"}
ALLOWED = {
    "common": set(),
    "sandbox": {"common"},
    "image": {"common"},
    "cni": {"common"},
    "cri": {"sandbox", "image", "cni", "common"},
}
RUNTIME_THIRD_PARTY_OK = {"seccomp", "pyseccomp"}


def imports_of(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def sources(package: str) -> list[pathlib.Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "api" not in p.parts[-2:-1])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    for path in sources(package):
        ours = imports_of(path) & OURS - {package}
        assert ours <= ALLOWED[package], f"{path.relative_to(REPO)} imports {sorted(ours)}"


@pytest.mark.parametrize("package", ["common", "sandbox", "image", "cni"])
def test_only_cri_speaks_grpc(package: str) -> None:
    for path in sources(package):
        assert not imports_of(path) & {"grpc", "google"}, path.relative_to(REPO)


def test_runtime_imports_only_stdlib_sandbox_common() -> None:
    allowed = set(sys.stdlib_module_names) | {"sandbox", "common"} | RUNTIME_THIRD_PARTY_OK
    for path in sorted((REPO / "sandbox").rglob("*.py")):
        extra = imports_of(path) - allowed
        assert not extra, f"{path.relative_to(REPO)} imports {sorted(extra)}"
