"""Domain errors: each carries a machine-readable ``code`` and, where known, the ``param``."""

from __future__ import annotations

from dataclasses import dataclass, field


class CoreError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.param = param

    def details(self) -> dict[str, object]:
        """Fields the error body carries beside code, message and param."""
        return {}


class NotFound(CoreError):
    code = "not_found"


class Conflict(CoreError):
    code = "conflict"


class InvalidInput(CoreError):
    code = "invalid_input"


class Overloaded(CoreError):
    code = "overloaded"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.retry_after = retry_after


class Transient(CoreError):
    code = "transient"


class Cancelled(CoreError):
    code = "cancelled"


@dataclass(frozen=True)
class DataIssue:
    """One problem in a data file, located well enough for a person to fix it."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    expected: str | None = None
    ids: tuple[str, ...] | None = None  # the records it concerns (data checks)

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        parts = [where] if where else []
        if self.field:
            parts.append(f"field '{self.field}'")
        text = ", ".join(parts)
        msg = f"{text}: {self.message}" if text else self.message
        return f"{msg} (expected {self.expected})" if self.expected else msg

    def as_dict(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.ids is not None:
            out["ids"] = list(self.ids)
        return out


@dataclass
class DatasetInvalid(InvalidInput):
    """A dataset failed validation; ``issues`` lists every problem found (capped)."""

    issues: list[DataIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        first = self.issues[0] if self.issues else None
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        InvalidInput.__init__(
            self,
            f"{first}{more}" if first else "invalid dataset",
            code=first.code if first else "invalid_dataset",
            param=first.field if first else None,
        )

    def details(self) -> dict[str, object]:
        return {"issues": [i.as_dict() for i in self.issues]}


class DataCheckFailed(DatasetInvalid):
    """A dataset fails a check that training needs (``core.datasets.checks``): code
    ``data_check_failed``; each issue names its check and the ids concerned."""

    def __post_init__(self) -> None:
        names = ", ".join(dict.fromkeys(i.code for i in self.issues))
        first = self.issues[0] if self.issues else None
        InvalidInput.__init__(
            self,
            f"the dataset fails data checks ({names}): {first}" if first else "data checks failed",
            code="data_check_failed",
            param="dataset_id",
        )


class TooLarge(CoreError):
    code = "too_large"
