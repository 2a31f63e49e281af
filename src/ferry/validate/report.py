"""One report for every validation: per category (schema, data, constraint, performance,
application) a status, errors and warnings — the shape the HTTP API returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Category:
    status: str = "passed"  # passed | failed
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.errors.append(message)


@dataclass
class ValidationReport:
    categories: dict[str, Category] = field(default_factory=dict)

    def category(self, name: str) -> Category:
        return self.categories.setdefault(name, Category())

    @property
    def status(self) -> str:
        return "failed" if any(c.status == "failed" for c in self.categories.values()) else "passed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "categories": {name: asdict(c) for name, c in self.categories.items()},
        }
