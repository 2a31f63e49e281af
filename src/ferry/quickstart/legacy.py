"""Demo data for the quickstart: a legacy camera counting database in SQLite.

The database mimics the schema of the camera counting system before its move
to Ferry-managed migrations: terse column names, single-letter status codes,
``'Y'``/``'N'`` flags and timestamps stored as text. A few rows are dirty on
purpose (duplicate users, malformed e-mail addresses, missing statuses) so the
quickstart has something to clean up and verify; :class:`LegacySummary` reports
exactly how many.

Everything is derived from ``random.Random(seed)``, so a given seed always
produces the same rows.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["LegacySummary", "build_legacy_database", "is_bad_email"]

# Share of user rows made dirty on purpose.
DUPLICATE_USER_RATE = 0.03
BAD_EMAIL_RATE = 0.04
NULL_STATUS_RATE = 0.05

#: First reading of the analytics table; readings are spread over ANALYTICS_DAYS days.
ANALYTICS_START = datetime(2024, 3, 4, 0, 0, 0)
ANALYTICS_DAYS = 3
MAX_COUNT = 200
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

LEGACY_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE users ("
    "user_id INTEGER PRIMARY KEY, user_name TEXT, email_address TEXT, account_status TEXT)",
    "CREATE TABLE cameras ("
    "camera_id INTEGER PRIMARY KEY, camera_name TEXT, camera_location TEXT, is_active TEXT)",
    "CREATE TABLE analytics ("
    "id INTEGER PRIMARY KEY, camera_id INTEGER, count INTEGER, timestamp TEXT)",
)

_FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "James",
    "Ava", "Lucas", "Isabella", "Mateo", "Charlotte", "Ethan", "Harper", "Aiden", "Evelyn",
    "Yuki", "Priya", "Arjun", "Fatima", "Omar", "Chen", "Wei", "Sofia", "Diego", "Lena",
    "Jonas", "Ingrid", "Mark", "Hannah", "Samuel", "Grace", "Daniel", "Chloe", "Kofi", "Amara",
    "Nikolai",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Nguyen", "Patel", "Kim", "Schmidt", "Rossi", "Novak", "Silva",
    "Tanaka", "Okafor", "Haddad", "Kowalski", "Larsen", "Dubois", "Mensah", "Ivanova",
)  # fmt: skip
_DOMAINS: tuple[str, ...] = (
    "example.com", "example.org", "mail.example.net", "retail-group.example",
    "citymall.example", "transit.example.com",
)  # fmt: skip
_LOCATIONS: tuple[str, ...] = (
    "Entrance North", "Entrance South", "Entrance East", "Entrance West", "Main Lobby",
    "Parking Level 1", "Parking Level 2", "Parking Level 3", "Food Court", "Loading Dock",
    "Atrium", "Escalator A", "Escalator B", "Platform 1", "Platform 2", "Ticket Hall",
    "Staff Entrance", "Cinema Foyer", "Rooftop Terrace", "Bus Stop Plaza",
)  # fmt: skip
# Weighted status codes: Active, Inactive, Suspended.
_STATUSES: tuple[str, ...] = ("A",) * 7 + ("I",) * 2 + ("S",)


@dataclass(frozen=True)
class LegacySummary:
    """What :func:`build_legacy_database` wrote, including the dirty-row counts."""

    path: Path
    users: int
    cameras: int
    analytics: int
    duplicate_users: int
    bad_emails: int
    null_statuses: int


def is_bad_email(email: str | None) -> bool:
    """Return True for the malformed addresses the generator plants.

    An address is bad when it has no ``'@'`` or when the part after the first
    ``'@'`` is not a dotted domain (for example ``"jane.doe@"``). ``None`` is
    not counted as bad: the generator never writes NULL e-mail addresses.
    The SQL equivalent is::

        instr(email_address, '@') = 0
        OR substr(email_address, instr(email_address, '@') + 1) NOT LIKE '%_._%'
    """
    if email is None:
        return False
    _local, at, domain = email.partition("@")
    if not at:
        return True
    dot = domain.find(".", 1)
    return dot == -1 or dot == len(domain) - 1


def build_legacy_database(
    path: Path,
    *,
    users: int = 500,
    cameras: int = 40,
    analytics: int = 5000,
    seed: int = 7,
) -> LegacySummary:
    """Create (or overwrite) a SQLite file holding the legacy camera counting schema.

    Returns a summary with the row counts and the exact number of dirty rows
    planted: duplicate users (same ``user_name`` and ``email_address`` as an
    earlier user), bad e-mail addresses (see :func:`is_bad_email`) and NULL
    ``account_status`` values.
    """
    for name, value in (("users", users), ("cameras", cameras), ("analytics", analytics)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if analytics and not cameras:
        raise ValueError("analytics rows need at least one camera")

    rng = random.Random(seed)
    user_rows = _user_rows(rng, users)
    camera_rows = _camera_rows(rng, cameras)
    analytics_rows = _analytics_rows(rng, analytics, cameras)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        stale.unlink(missing_ok=True)

    # isolation_level=None: we manage the single transaction ourselves.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for ddl in LEGACY_SCHEMA:
            conn.execute(ddl)
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", user_rows)
        conn.executemany("INSERT INTO cameras VALUES (?, ?, ?, ?)", camera_rows)
        conn.executemany("INSERT INTO analytics VALUES (?, ?, ?, ?)", analytics_rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()

    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for _, user_name, email, _ in user_rows:
        if (user_name, email) in seen:
            duplicates += 1
        seen.add((user_name, email))

    return LegacySummary(
        path=path,
        users=len(user_rows),
        cameras=len(camera_rows),
        analytics=len(analytics_rows),
        duplicate_users=duplicates,
        bad_emails=sum(1 for row in user_rows if is_bad_email(row[2])),
        null_statuses=sum(1 for row in user_rows if row[3] is None),
    )


UserRow = tuple[int, str, str, str | None]
CameraRow = tuple[int, str, str, str]
AnalyticsRow = tuple[int, int, int, str]


def _pick_rows(rng: random.Random, population: Sequence[int], rate: float) -> set[int]:
    """Pick about ``rate`` of ``population`` (at least one if the population is large enough)."""
    wanted = round(len(population) * rate)
    if wanted == 0 and len(population) >= 1 / rate:
        wanted = 1
    return set(rng.sample(population, min(wanted, len(population))))


def _user_rows(rng: random.Random, count: int) -> list[UserRow]:
    # Duplicates copy an earlier row, so the first row can never be one.
    duplicate_at = _pick_rows(rng, range(1, count), DUPLICATE_USER_RATE)
    originals = [i for i in range(count) if i not in duplicate_at]
    bad_email_at = _pick_rows(rng, originals, BAD_EMAIL_RATE)
    null_status_at = _pick_rows(rng, range(count), NULL_STATUS_RATE)

    rows: list[UserRow] = []
    used_locals: dict[str, int] = {}
    for i in range(count):
        user_id = i + 1
        status = None if i in null_status_at else rng.choice(_STATUSES)
        if i in duplicate_at:
            # Same person registered twice: copy name and e-mail of an earlier user.
            _, user_name, email, _ = rows[rng.randrange(i)]
            rows.append((user_id, user_name, email, status))
            continue

        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        user_name = f"{first} {last}"
        # Unique local part per original user, so only planted duplicates collide.
        base = f"{first}.{last}".lower()
        seq = used_locals.get(base, 0)
        used_locals[base] = seq + 1
        local = base if seq == 0 else f"{base}{seq + 1}"
        if i in bad_email_at:
            email = local if rng.random() < 0.5 else f"{local}@"
        else:
            email = f"{local}@{rng.choice(_DOMAINS)}"
        rows.append((user_id, user_name, email, status))
    return rows


def _camera_rows(rng: random.Random, count: int) -> list[CameraRow]:
    rows: list[CameraRow] = []
    per_location: dict[str, int] = {}
    for i in range(count):
        # Every location gets a camera first, then busy spots get extra ones.
        location = _LOCATIONS[i] if i < len(_LOCATIONS) else rng.choice(_LOCATIONS)
        number = per_location.get(location, 0) + 1
        per_location[location] = number
        name = f"CAM-{i + 1:03d} {location}" + ("" if number == 1 else f" #{number}")
        is_active = "Y" if rng.random() < 0.85 else "N"
        rows.append((i + 1, name, location, is_active))
    return rows


def _analytics_rows(rng: random.Random, count: int, cameras: int) -> list[AnalyticsRow]:
    span = ANALYTICS_DAYS * 24 * 3600
    offsets = sorted(rng.randrange(span) for _ in range(count))
    rows: list[AnalyticsRow] = []
    for i, offset in enumerate(offsets):
        moment = ANALYTICS_START + timedelta(seconds=offset)
        hour = moment.hour + moment.minute / 60
        # Busier during the day (peak around 13:00), quiet at night.
        busy = max(0.0, 1 - abs(hour - 13) / 9)
        mean = 5 + busy * 120
        value = min(MAX_COUNT, max(0, round(rng.gauss(mean, mean / 3 + 3))))
        rows.append((i + 1, rng.randint(1, cameras), value, moment.strftime(TIMESTAMP_FORMAT)))
    return rows
