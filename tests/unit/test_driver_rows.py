"""Rows read through the driver (where connectorx cannot serve a table) as Arrow columns."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from ferry.data.extract import _driver_rows


def test_values_no_arrow_type_holds_travel_as_text() -> None:
    """A BIGINT UNSIGNED past int64 and a decimal NaN had failed the whole chunk."""
    table = _driver_rows(
        ["big", "amount", "n"],
        [(2**64 - 1, Decimal("NaN"), 1), (1, Decimal("1.5"), None)],
    )

    assert table.column("big").to_pylist() == ["18446744073709551615", "1"]
    assert table.column("amount").to_pylist() == ["NaN", "1.5"]
    assert table.schema.field("n").type == pa.int64()  # the rest keep their own types
    assert table.column("n").to_pylist() == [1, None]
