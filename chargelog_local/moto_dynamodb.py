"""moto's DynamoDB, made to take one request at a time, as the local stack needs it.

DynamoDB makes each write atomic: a conditional UpdateItem reads, checks and writes its item in one step, and a
transaction sees no other write in between. moto's backend (5.x) does neither under concurrent requests, and its
server handles each request in a thread of its own:
- an UpdateItem reads the item, evaluates the condition and the ADDs, then writes: two at once can both pass a
  condition meant to let one through, and lose one of two ADDs;
- TransactWriteItems deep-copies every table it touches first (to roll back), which fails with "dictionary changed
  size during iteration" while another request writes the table (a 500), and a rollback puts back that copy,
  losing whatever was written meanwhile.
So every DynamoDB request moto handles in this process goes through one lock (`serialize`). It costs nothing
DynamoDB would not: moto's DynamoDB is Python holding the GIL, one request at a time in effect anyway.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Final

_LOCK: Final = threading.Lock()
_MARK: Final = "_chargelog_serialized"


def serialize() -> None:
    """Make moto's DynamoDB handle one request at a time in this process (server or in-process mock); idempotent."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def call_action(handler: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(handler, *args, **kwargs)

    setattr(call_action, _MARK, True)
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
