"""Engines, pools and one adapter per dialect."""

from ferry.db.adapter import Adapter, adapter_for
from ferry.db.target import Target, open_target, open_url

__all__ = ["Adapter", "Target", "adapter_for", "open_target", "open_url"]
