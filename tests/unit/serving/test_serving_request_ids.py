"""Request ids the server makes: UUIDv7, so the prediction log's unique index grows at its end."""

from __future__ import annotations

import time
import uuid

from mlkeel.serving.schemas import check_request_id, new_request_id


def test_a_new_request_id_is_a_uuid7_in_hex_that_the_server_itself_accepts() -> None:
    made = new_request_id()
    parsed = uuid.UUID(made)

    assert (len(made), parsed.version, parsed.variant) == (32, 7, uuid.RFC_4122)
    assert check_request_id(made) == made
    assert abs(int(made[:12], 16) - time.time() * 1000) < 60_000  # its first 48 bits: now, ms


def test_request_ids_are_unique_and_sort_in_the_order_they_were_made() -> None:
    earlier = [new_request_id() for _ in range(1000)]
    time.sleep(0.002)  # the next millisecond
    later = new_request_id()

    assert len(set(earlier)) == len(earlier)
    assert all(later > made for made in earlier)
