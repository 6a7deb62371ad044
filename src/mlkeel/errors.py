"""Every error mlkeel raises on purpose.

The tree::

    MlkeelError                      root; the CLI prints its message and exits 1
    ├── ConfigError                  mlkeel.toml or an MLKEEL_* variable is invalid (exit 2)
    ├── DataError                    the data source is missing, unreadable or lacks a column
    ├── TrainingError                the user's train() raised or returned an unusable model
    ├── RegistryError                the MLflow store is unreachable or refuses an operation
    │   └── ModelNotFoundError       no such model, version or alias
    ├── ArtifactIntegrityError       a model artifact does not match the digest recorded for it
    ├── DatabaseError                the operational database is unreachable or refuses a query
    ├── GateFailedError              a challenger failed the deployment gate; nothing moved
    ├── PipelineError                a retraining step failed; ``step`` names it; nothing moved
    ├── LockedError                  another process holds the lock (a retrain already running)
    ├── JobInterruptedError          mlkeel up stopped a job at a safe point (interrupted)
    └── ServingError                 the server refuses a request (400); ``error_type``, ``field``
        ├── MalformedRequestError    the body is not JSON (400)
        ├── InvalidInputError        the rows do not fit the model's input schema (422)
        ├── PayloadTooLargeError     the body or the number of rows is over the limit (413)
        ├── ModelNotServedError      the server does not serve that model (404)
        ├── ModelNotReadyError       the model is configured but not loaded yet (503)
        ├── FeedbackUnavailableError labels sent to a server without a prediction log (409)
        ├── HistoryUnavailableError  history asked of a server without a database (503)
        ├── JobsUnavailableError     job runs asked of a server without a database (409)
        ├── UnauthorizedError        a protected route called without a bearer token (401)
        ├── ForbiddenError           a protected route called with a wrong token (403)
        └── OverloadedError          too many requests in progress, or a predict timeout (503)

``http_status`` on each class is the one error -> HTTP status table the server uses.

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


class DatabaseError(MlkeelError):
    """The operational database (prediction log, history) is unreachable or refused a query."""

    http_status = 503


class ServingError(MlkeelError):
    """A request the model server refuses; ``error_type`` and ``field`` say what and where."""

    http_status = 400
    error_type = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        if error_type is not None:
            self.error_type = error_type


class MalformedRequestError(ServingError):
    """The request body is not valid JSON."""

    error_type = "malformed_json"


class InvalidInputError(ServingError):
    """The request is JSON but does not fit the model's input schema or the API's shape."""

    http_status = 422
    error_type = "invalid_input"


class PayloadTooLargeError(ServingError):
    """The request body or its number of rows is over the configured limit."""

    http_status = 413
    error_type = "payload_too_large"


class ModelNotServedError(ServingError):
    """The server does not serve a model of that name."""

    http_status = 404
    error_type = "unknown_model"


class ModelNotReadyError(ServingError):
    """The model is configured but no version of it is loaded (yet)."""

    http_status = 503
    error_type = "model_not_ready"


class FeedbackUnavailableError(ServingError):
    """Labels were sent to a server that does not log predictions."""

    http_status = 409
    error_type = "feedback_unavailable"


class GateFailedError(MlkeelError):
    """A challenger failed the deployment gate; the champion did not move."""


class PipelineError(MlkeelError):
    """A step of the retraining pipeline failed; the champion did not move."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class LockedError(MlkeelError):
    """Another process holds the named lock, e.g. a retrain of the same model is running."""

    http_status = 409


class HistoryUnavailableError(ServingError):
    """Deployment history was asked of a server that has no operational database."""

    http_status = 503
    error_type = "history_unavailable"


class JobsUnavailableError(ServingError):
    """Job runs were asked of a server that has no operational database."""

    http_status = 409
    error_type = "jobs_unavailable"


class JobInterruptedError(MlkeelError):
    """``mlkeel up`` is stopping: a scheduled job ended at a safe point, nothing half-done."""


class RolloutError(MlkeelError):
    """A canary or shadow cannot start or end as asked (under MlkeelError; exit 1)."""

    http_status = 409


class UnauthorizedError(ServingError):
    """A protected route was called without a bearer token."""

    http_status = 401
    error_type = "unauthorized"


class ForbiddenError(ServingError):
    """A protected route was called with a wrong token."""

    http_status = 403
    error_type = "forbidden"


class OverloadedError(ServingError):
    """Too many requests in progress, or a prediction over its time limit: retry later."""

    http_status = 503
    error_type = "overloaded"
