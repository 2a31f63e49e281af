"""Proof that a change is right: data (counts and row-by-row comparison), constraints."""

from ferry.validate.report import Category, ValidationReport

__all__ = ["Category", "ValidationReport"]
