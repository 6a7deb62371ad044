"""Imports point one way (DESIGN.md): the CLI imports everything and nothing imports it;
serving never imports monitoring or retraining; only registry.py imports mlflow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "src" / "mlkeel"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules() -> dict[str, set[str]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = imports_of(path)
    return found


def offenders(importer: str, imported: str) -> list[str]:
    return sorted(
        module
        for module, names in modules().items()
        if module.startswith(importer)
        and any(name == imported or name.startswith(imported + ".") for name in names)
    )


def test_nothing_imports_the_cli() -> None:
    outside = [m for m in offenders("mlkeel", "mlkeel.cli") if not m.startswith("mlkeel.cli")]
    assert outside == ["mlkeel.__main__"]


def test_serving_never_imports_monitoring_or_retraining() -> None:
    assert offenders("mlkeel.serving", "mlkeel.monitoring") == []
    assert offenders("mlkeel.serving", "mlkeel.retraining") == []


def test_monitoring_never_imports_serving() -> None:
    assert offenders("mlkeel.monitoring", "mlkeel.serving") == []


def test_only_the_registry_imports_mlflow() -> None:
    assert offenders("mlkeel", "mlflow") == ["mlkeel.registry"]


def test_importing_the_package_does_no_work() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    statements = [n for n in tree.body if not isinstance(n, ast.Expr | ast.Assign)]
    assert statements == [] or all(isinstance(n, ast.ImportFrom) for n in statements)


def test_only_the_registry_talks_to_the_mlflow_client() -> None:
    users = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "registry.py" and "registry.client" in path.read_text()
    )
    assert users == []
