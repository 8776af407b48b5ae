"""How a listing is read a page at a time, as Kubernetes' ``limit``/``continue`` and Nomad's
``per_page``/``next_token``: ``limit`` says how many, ``after`` where the page before ended (its ``next``)."""
from __future__ import annotations

import re
from typing import Callable, TypeVar

import falcon

from cnetd.api.limits import PAGE_AFTER_MAX_CHARS, PAGE_MAX
from cnetd.common.errors import Invalid
from ledger.records import WorkloadRecord
from ledger.store import Position

Item = TypeVar("Item")

# A position as a token: the time as Python writes it (repr; never an exponent that makes it infinite), "/", the id.
POSITION_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,30})?(e-[0-9]{1,3})?/[^/]+$"


def page_size(req: falcon.Request) -> int | None:
    """``limit``: one whole number, 1 to ``PAGE_MAX``; None when not given."""
    raw = req.params.get("limit")  # a list when repeated
    if raw is None:
        return None
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= PAGE_MAX):
        raise Invalid(f"limit: expected one whole number, 1 to {PAGE_MAX}")
    return int(raw)


def page_start(req: falcon.Request, expected: str) -> str | None:
    """``after``: one value of at most ``PAGE_AFTER_MAX_CHARS`` (``expected`` says what); None when not given."""
    raw = req.params.get("after")
    if raw is not None and (not isinstance(raw, str) or len(raw) > PAGE_AFTER_MAX_CHARS):
        raise Invalid(f"after: expected {expected}")
    return raw


def newest_first(req: falcon.Request) -> bool:
    """``reverse``: ``true`` lists newest first (as Nomad's ``reverse``); ``false``, or none, oldest first."""
    raw = req.params.get("reverse")
    if raw is not None and raw not in ("true", "false"):
        raise Invalid("reverse: expected true or false")
    return raw == "true"


def workload_position(record: WorkloadRecord) -> Position:
    return record.created_at, record.id


def position_token(position: Position) -> str:
    """A listing's ``next``: where its page ended. It holds the time, not only the id, so that the walk goes on
    after the workload it names is deleted."""
    return f"{position[0]!r}/{position[1]}"


def page_and_next(read: list[Item], limit: int | None, token: Callable[[Item], str]) -> tuple[list[Item], str | None]:
    """A page from what was read for it (one more than ``limit``, to know whether there is a next), and its
    ``next``, the ``token`` of its last item: None on the last page, or without ``limit``."""
    if limit is None or len(read) <= limit:
        return read, None
    return read[:limit], token(read[limit - 1])


def read_position(token: str | None) -> Position | None:
    """The position a ``next`` names; None for none (the start)."""
    if token is None:
        return None
    if not re.fullmatch(POSITION_PATTERN, token):
        raise Invalid("after: expected a listing's next (TIME/ID)")
    created, _, workload_id = token.partition("/")
    return float(created), workload_id
