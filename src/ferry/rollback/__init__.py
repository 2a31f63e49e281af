"""Backups and restore (undo planning and automatic rollback come later)."""

from ferry.rollback.backup import Backup, BackupError, create_backup, list_backups, restore_backup

__all__ = ["Backup", "BackupError", "create_backup", "list_backups", "restore_backup"]
