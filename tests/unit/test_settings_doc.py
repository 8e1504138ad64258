"""Every setting a service reads is documented: its variable appears, whole and in backticks,
in the docs' settings tables (docs/operations.md, with the gateway's and the client's in
docs/http-api.md and the uploader's in docs/archipelago.md)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / name for name in ("operations.md", "http-api.md", "archipelago.md")]


def settings_classes() -> list[type[BaseSettings]]:
    """Every `class X(BaseSettings)` under libs/ and services/, imported."""
    found: list[type[BaseSettings]] = []
    for source in (ROOT / "libs", ROOT / "services"):
        for path in sorted(source.rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "BaseSettings" for b in node.bases):
                    module = ".".join(path.relative_to(source).with_suffix("").parts)
                    found.append(getattr(importlib.import_module(module), node.name))
    return found


def test_every_setting_is_documented():
    documented = "".join(path.read_text() for path in DOCS)
    classes = settings_classes()
    assert len(classes) >= 10
    missing = [
        f"{cls.__name__}: {variable}"
        for cls in classes
        for variable in (f"{cls.model_config.get('env_prefix', '')}{name}".upper() for name in cls.model_fields)
        if f"`{variable}`" not in documented
    ]
    assert not missing, missing
