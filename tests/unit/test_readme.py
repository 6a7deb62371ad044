"""The README stays true: its set-up commands are the ones CI runs, and every setting is
documented in its configuration table."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from mlkeel.settings import ModelConfig, Settings

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def keys(model: type[BaseModel], prefix: str) -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if f"`{prefix}{name}.*`" in README:
                continue
            found += keys(annotation, f"{prefix}{name}.")
        else:
            found.append(f"{prefix}{name}")
    return found


def test_every_setting_is_documented() -> None:
    documented = [
        *keys(Settings, ""),
        *keys(ModelConfig, "models.NAME."),
    ]
    skip = {"project_dir", "models", "models.NAME.name", "alerts.sinks"}
    missing = [key for key in documented if key not in skip and f"`{key}`" not in README]

    assert missing == []


def test_setup_is_two_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set up", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.startswith("uv ")]

    assert commands == ["uv run mlkeel demo", "uv run pytest"]
    assert "\nuv run pytest\n" in (ROOT / ".ci" / "run").read_text()
