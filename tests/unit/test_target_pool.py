"""Pool settings of a target reach its engine."""

from __future__ import annotations

from pathlib import Path

from ferry.config.project import PoolConfig, TargetConfig
from ferry.db.target import open_url


def test_min_connections_are_opened_up_front_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    config = TargetConfig(url=url, pool=PoolConfig(min=3, max=4, acquire_timeout=2))
    target = open_url("t", url, config)
    try:
        assert target.engine.pool.checkedin() == 0
        with target.connect():
            assert target.engine.pool.checkedout() == 1
        assert target.engine.pool.checkedin() == 3
        assert target.engine.pool.size() == 4
    finally:
        target.dispose()


def test_min_is_capped_by_max(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    target = open_url("t", url, TargetConfig(url=url, pool=PoolConfig(min=9, max=2)))
    try:
        with target.connect():
            pass
        assert target.engine.pool.checkedin() == 2
    finally:
        target.dispose()
