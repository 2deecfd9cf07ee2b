"""The log routes' query parameters, each defined once, and the pydantic models that gather them for a route.

A handler takes its filters as one parameter, ``filters: Annotated[LogQuery, Query()]``, under
``@expand_query_models``. Powertools (3.37) takes such a model as query parameters by itself, but then documents
each field as a bare string or integer (no enum, format, bounds, default, array or pattern), reports an error at
``query.<parameter>.<field>`` and keeps the first of a repeated value where a single one is expected. So the
decorator hands Powertools the model's fields as ordinary query parameters, each with its own ``Query()``, and
builds the model from what Powertools validated: the document, the errors and the answers are those of the
separate parameters.

The models list their fields rather than derive from one another: pydantic puts inherited fields first, which
would reorder the parameters in the document.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, BeforeValidator

from chargelog.logic import logs
from chargelog.logic.exchanges import ExchangeFilters
from chargelog.logic.logs import LogFilters
from chargelog.models.base import Model
from chargelog.models.logs import ActionName, RangeBound, Text
from chargelog.models.records import Direction, RecordKind
from chargelog.ocpp_frames import MessageType
from chargelog.vendors import Vendor

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _not_a_number(value: Any) -> Any:
    # pydantic also reads "0.5" or "1763000000" as Unix times; this API takes ISO 8601, as the document says.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("Give an ISO 8601 date-time with an offset, e.g. 2026-11-20T08:00:00Z")
    return value


IsoDateTime = Annotated[RangeBound, BeforeValidator(_not_a_number)]
From = Annotated[
    IsoDateTime | None, Query(alias="from", description="Start of the range (inclusive), ISO 8601 with offset")
]
To = Annotated[IsoDateTime | None, Query(alias="to", description="End of the range (inclusive), ISO 8601 with offset")]
Actions = Annotated[list[ActionName] | None, Query(alias="action", description="OCPP action; repeat for several")]
RequiredActions = Annotated[list[ActionName], Query(alias="action", description="OCPP action; repeat for several")]
DirectionFilter = Annotated[Direction | None, Query()]
MessageTypeFilter = Annotated[MessageType | None, Query()]
StatusFilter = Annotated[Text | None, Query()]
VendorFilter = Annotated[Vendor | None, Query()]
MessageIdFilter = Annotated[Text | None, Query()]
TransactionIdFilter = Annotated[
    Text | None, Query(description="OCPP transaction id (1.6 numbers as text, 2.0.1 ids), whatever the vendor")
]
ConnectorStatusFilter = Annotated[
    Text | None, Query(description="Connector status a StatusNotification reports (Available, Charging, Faulted...)")
]
KindFilter = Annotated[RecordKind | None, Query(description="ocpp: OCPP messages; status: vendor status records")]
OrderParam = Annotated[Literal["asc", "desc"], Query(description="Time order")]
Limit = Annotated[int, Query(ge=1, le=logs.MAX_LIMIT, description=f"Records per page, at most {logs.MAX_LIMIT}")]
ExchangeLimit = Annotated[
    int, Query(ge=1, le=logs.MAX_LIMIT, description=f"CALLs (exchanges) per page, at most {logs.MAX_LIMIT}")
]
# Not a filter: where the previous page ended. A parameter of its own next to the model.
Cursor = Annotated[str | None, Query(max_length=2000, description="next_cursor from the previous page")]


class LogQuery(Model):
    """A charger's or a site's log records: which ones, in which order, how many per page."""

    start: From = None
    end: To = None
    actions: Actions = None
    direction: DirectionFilter = None
    message_type: MessageTypeFilter = None
    status: StatusFilter = None
    vendor: VendorFilter = None
    message_id: MessageIdFilter = None
    transaction_id: TransactionIdFilter = None
    connector_status: ConnectorStatusFilter = None
    kind: KindFilter = None
    order: OrderParam = "asc"
    limit: Limit = logs.DEFAULT_LIMIT

    def log_filters(self) -> LogFilters:
        return LogFilters(
            start=self.start,
            end=self.end,
            actions=tuple(self.actions or ()),
            direction=self.direction,
            message_type=self.message_type,
            status=self.status,
            vendor=self.vendor,
            message_id=self.message_id,
            transaction_id=self.transaction_id,
            connector_status=self.connector_status,
            kind=self.kind,
            order=self.order,
            limit=self.limit,
        )


class FleetLogQuery(LogQuery):
    """The fleet's records: the same filters, with at least one action (the fleet is read per action)."""

    actions: RequiredActions


class ExchangeQuery(Model):
    """A charger's exchanges: by the CALL's time, action and direction, in which order, how many per page."""

    start: From = None
    end: To = None
    actions: Actions = None
    direction: DirectionFilter = None
    order: OrderParam = "asc"
    limit: ExchangeLimit = logs.DEFAULT_LIMIT

    def exchange_filters(self) -> ExchangeFilters:
        return ExchangeFilters(
            start=self.start,
            end=self.end,
            actions=tuple(self.actions or ()),
            direction=self.direction,
            order=self.order,
            limit=self.limit,
        )


class StatusQuery(Model):
    """A charger's status timeline: a time range, in which order, how many per page."""

    start: From = None
    end: To = None
    order: OrderParam = "asc"
    limit: Limit = logs.DEFAULT_LIMIT

    def log_filters(self) -> LogFilters:
        return LogFilters(start=self.start, end=self.end, order=self.order, limit=self.limit)


def expand_query_models[**P, R](handler: Callable[P, R]) -> Callable[..., R]:
    """Declares a handler's ``Annotated[Model, Query()]`` parameters to Powertools as the model's own fields.

    Put it under the route's decorator. The handler still gets the model, built from the validated fields.
    """
    hints = get_type_hints(handler, include_extras=True)
    signature = inspect.signature(handler)
    models: dict[str, type[BaseModel]] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        model = _query_model(annotation)
        if model is None:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
        else:
            models[parameter.name] = model
            parameters.extend(_fields_as_parameters(model))
    names = [parameter.name for parameter in parameters]
    if not models or len(set(names)) != len(names):
        raise TypeError(f"{handler.__name__}: no Annotated[Model, Query()] parameter, or a name given twice: {names}")
    # Required parameters first, as a Python signature has them, and as the document has always listed them.
    parameters.sort(key=lambda parameter: parameter.default is not inspect.Parameter.empty)

    @functools.wraps(handler)
    def with_models(**arguments: Any) -> R:
        for name, model in models.items():
            values = {field: arguments.pop(field) for field in model.model_fields}
            arguments[name] = model.model_validate(values, by_name=True)
        return handler(**arguments)  # type: ignore[call-arg]  # the handler's own parameters, by name

    # Powertools reads the parameters from the signature, with annotations resolved here (the wrapper's globals
    # are not the handler's module's).
    with_models.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    return with_models


def _query_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is not Annotated:
        return None
    model, *metadata = get_args(annotation)
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    return model if is_model and any(isinstance(item, Query) for item in metadata) else None


def _fields_as_parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    hints = get_type_hints(model, include_extras=True)
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True),
            annotation=hints[name],
        )
        for name, field in model.model_fields.items()
    ]
