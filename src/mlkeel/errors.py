"""Every error mlkeel raises on purpose.

The tree::

    MlkeelError                      root; the CLI prints its message and exits 1
    ├── ConfigError                  mlkeel.toml or an MLKEEL_* variable is invalid (exit 2)
    ├── DataError                    the data source is missing, unreadable or lacks a column
    ├── TrainingError                the user's train() raised or returned an unusable model
    ├── RegistryError                the MLflow store is unreachable or refuses an operation
    │   └── ModelNotFoundError       no such model, version or alias
    └── ArtifactIntegrityError       a model artifact does not match the digest recorded for it

Messages name the bad value, what is allowed, and what to do next.
"""

from __future__ import annotations


class MlkeelError(Exception):
    """Root of every error mlkeel raises on purpose."""

    exit_code: int = 1
    http_status: int = 500


class ConfigError(MlkeelError):
    """The project configuration is invalid."""

    exit_code = 2


class DataError(MlkeelError):
    """The data source is missing, unreadable, or lacks a required column."""

    http_status = 422


class TrainingError(MlkeelError):
    """The user's training function failed or returned an unusable model."""


class RegistryError(MlkeelError):
    """The model registry (MLflow) is unreachable or refused an operation."""

    http_status = 503


class ModelNotFoundError(RegistryError):
    """No such registered model, version or alias."""

    http_status = 404


class ArtifactIntegrityError(MlkeelError):
    """A model artifact does not match the SHA-256 digest recorded at registration."""
