"""OCPP-J frames: read the JSON arrays that chargers and central systems exchange, and write them back.

OCPP-J (the JSON-over-WebSocket RPC framework of OCPP 1.6-J and 2.0.1) wraps every message in a JSON array
whose first element is the message type id:

- CALL ``[2, "<messageId>", "<Action>", {payload}]``: a request;
- CALLRESULT ``[3, "<messageId>", {payload}]``: the answer to the CALL with the same message id;
- CALLERROR ``[4, "<messageId>", "<errorCode>", "<errorDescription>", {errorDetails}]``: a CALL that failed.

Vendor log APIs hand frames over as JSON text or as already-decoded arrays. `parse_frame` takes either and
raises `MalformedFrameError`, which says exactly what is wrong, for anything that is not a frame. It is
liberal where real chargers are sloppy but the meaning stays clear, and strict everywhere else:

- the message type id may be ``2`` or ``2.0`` (some encoders write every number as a float), never ``"2"``;
- a CALLERROR may leave out errorDetails, or errorDescription and errorDetails, or send null for them; they
  default to ``{}`` and ``""``;
- message ids may be up to 255 characters. OCPP caps them at 36, but gateways that prefix or concatenate ids
  exceed that and the length is harmless here. Empty and non-string ids are rejected: a message id's one job
  is to pair a CALL with its answer;
- trailing extra elements are rejected: OCPP-J never sends them, so they mean a broken or misread frame;
- NaN, Infinity and numbers beyond float range are rejected: JSON has no such values, so a frame holding
  them could not be written back.

`frame_to_json` writes a frame in one canonical form: compact, object keys sorted, CALLERROR always with all
five elements. Equal frames give equal text, and `parse_frame` reads the text back to an equal frame.

Standard library only: this module loads on every Lambda cold start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

MessageType = Literal["CALL", "CALLRESULT", "CALLERROR"]

MAX_MESSAGE_ID_LENGTH: Final = 255

_TYPE_BY_ID: Final[dict[int, MessageType]] = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}
_ID_BY_TYPE: Final[dict[MessageType, int]] = {name: type_id for type_id, name in _TYPE_BY_ID.items()}
_SHOWN_VALUE_LENGTH: Final = 40


class MalformedFrameError(ValueError):
    """Input that is not a well-formed OCPP-J frame. The message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class OcppFrame:
    """One OCPP-J message, checked: every frame that exists is well formed.

    Which fields a frame carries depends on its type, and the others are None:

    - CALL: ``action`` and ``payload``;
    - CALLRESULT: ``payload``;
    - CALLERROR: ``error_code``, ``error_description`` and ``error_details``.

    Construction checks the fields (raising `MalformedFrameError`) but not that payloads hold only JSON
    values; `parse_frame` guarantees that too, so prefer it for anything read from outside.
    """

    message_type: MessageType
    message_id: str
    action: str | None = None
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None
    error_details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_message_id(self.message_id)
        if self.message_type == "CALL":
            _check_non_empty_string("action", self.action)
            _check_object("payload", self.payload)
            absent: tuple[str, ...] = ("error_code", "error_description", "error_details")
        elif self.message_type == "CALLRESULT":
            _check_object("payload", self.payload)
            absent = ("action", "error_code", "error_description", "error_details")
        elif self.message_type == "CALLERROR":
            _check_non_empty_string("errorCode", self.error_code)
            if not isinstance(self.error_description, str):
                _fail(f"errorDescription must be a string, got {_describe(self.error_description)}")
            _check_object("errorDetails", self.error_details)
            absent = ("action", "payload")
        else:
            _fail(f"message type must be CALL, CALLRESULT or CALLERROR, got {self.message_type!r}")
        for name in absent:
            if getattr(self, name) is not None:
                _fail(f"a {self.message_type} frame has no {name}, got {_describe(getattr(self, name))}")


def parse_frame(raw: str | list[Any]) -> OcppFrame:
    """Read one OCPP-J frame from JSON text or from an already-decoded JSON array.

    A decoded array is serialized and read back, so the frame never shares the caller's mutable objects and
    holds only JSON values (a set or a NaN in it is rejected). Raises `MalformedFrameError`.
    """
    elements = _decode(raw)
    if not elements:
        _fail("frame is an empty array; expected [messageTypeId, messageId, ...]")
    message_type = _message_type(elements[0])
    if message_type == "CALL":
        _check_length(elements, "CALL needs 4 elements [2, messageId, action, payload]", 4, 4)
        _, message_id, action, payload = elements
        return OcppFrame("CALL", message_id, action=action, payload=payload)
    if message_type == "CALLRESULT":
        _check_length(elements, "CALLRESULT needs 3 elements [3, messageId, payload]", 3, 3)
        _, message_id, payload = elements
        return OcppFrame("CALLRESULT", message_id, payload=payload)
    _check_length(
        elements, "CALLERROR needs 3 to 5 elements [4, messageId, errorCode, errorDescription?, errorDetails?]", 3, 5
    )
    _, message_id, error_code, *optional = elements
    description = optional[0] if len(optional) > 0 else None
    details = optional[1] if len(optional) > 1 else None
    return OcppFrame(
        "CALLERROR",
        message_id,
        error_code=error_code,
        error_description="" if description is None else description,
        error_details={} if details is None else details,
    )


def frame_to_json(frame: OcppFrame) -> str:
    """The frame as compact canonical JSON text: no whitespace, object keys sorted, non-ASCII kept as is."""
    type_id = _ID_BY_TYPE[frame.message_type]
    elements: list[Any]
    if frame.message_type == "CALL":
        elements = [type_id, frame.message_id, frame.action, frame.payload]
    elif frame.message_type == "CALLRESULT":
        elements = [type_id, frame.message_id, frame.payload]
    else:
        elements = [type_id, frame.message_id, frame.error_code, frame.error_description, frame.error_details]
    return json.dumps(elements, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


def _decode(raw: object) -> list[Any]:
    """The frame's elements, from JSON text or from a decoded array (re-read as JSON; see `parse_frame`)."""
    if isinstance(raw, list):
        try:
            raw = json.dumps(raw, allow_nan=False)
        except RecursionError:
            _fail("frame is nested too deeply")
        except (TypeError, ValueError) as error:
            _fail(f"frame holds values JSON cannot represent: {error}")
    if not isinstance(raw, str):
        _fail(f"frame must be JSON text or a decoded JSON array, got {type(raw).__name__}")
    try:
        decoded = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except MalformedFrameError:
        raise
    except RecursionError:
        _fail("frame is nested too deeply")
    except ValueError as error:  # JSONDecodeError, or an integer too long for Python to convert
        _fail(f"frame is not valid JSON: {error}")
    if not isinstance(decoded, list):
        _fail(f"frame must be a JSON array, got {_describe(decoded)}")
    return decoded


def _reject_constant(name: str) -> NoReturn:
    """`json.loads` hook for NaN, Infinity and -Infinity, which Python accepts but JSON does not have."""
    _fail(f"frame is not valid JSON: {name} is not a JSON value")


def _finite_float(text: str) -> float:
    """`json.loads` hook for numbers with a fraction or exponent: rejects those beyond float range (1e400)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        _fail(f"frame is not valid JSON: number {text} is out of range")
    return value


def _message_type(type_id: object) -> MessageType:
    """The message type a type id names; an integral float such as 2.0 counts as the integer."""
    if isinstance(type_id, bool) or not isinstance(type_id, int | float):
        _fail(f"message type id must be a number, got {_describe(type_id)}")
    key = int(type_id) if isinstance(type_id, float) and type_id.is_integer() else type_id
    message_type = _TYPE_BY_ID.get(key) if isinstance(key, int) else None
    if message_type is None:
        _fail(f"unknown message type id {_shown(type_id)} (expected 2 CALL, 3 CALLRESULT or 4 CALLERROR)")
    return message_type


def _check_length(elements: list[Any], expectation: str, least: int, most: int) -> None:
    if not least <= len(elements) <= most:
        _fail(f"{expectation}, got {len(elements)}")


def _check_message_id(message_id: object) -> None:
    if isinstance(message_id, str) and 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        return
    if isinstance(message_id, str):
        got = "an empty string" if not message_id else f"a string of {len(message_id)} characters"
    else:
        got = _describe(message_id)
    _fail(f"message id must be a non-empty string of at most {MAX_MESSAGE_ID_LENGTH} characters, got {got}")


def _check_non_empty_string(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        _fail(f"{name} must be a non-empty string, got {_describe(value)}")


def _check_object(name: str, value: object) -> None:
    if not isinstance(value, dict):
        _fail(f"{name} must be a JSON object, got {_describe(value)}")


def _describe(value: object) -> str:
    """A value as an error message shows it: its JSON type, and for scalars the value (shortened)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int | float):
        kind = "number"
    elif isinstance(value, str):
        kind = "string"
    else:
        return type(value).__name__
    return f"{kind} {_shown(value)}"


def _shown(value: str | float) -> str:
    """A scalar as JSON text, shortened so that an error message stays readable."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_VALUE_LENGTH else text[: _SHOWN_VALUE_LENGTH - 3] + "..."


def _fail(message: str) -> NoReturn:
    raise MalformedFrameError(message) from None
