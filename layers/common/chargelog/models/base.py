"""The base of chargelog's pydantic models: each is built when first used, not when its module is imported.

Building a model (its core schema, validator and serializer) takes a fraction of a millisecond to a few
milliseconds; chargelog has about eighty, and a function's modules define many more than one invocation uses (the
API's routes each use a few; the worker's collection jobs none of the diagnostics models). With ``defer_build``
pydantic builds a model at its first validation, dump or schema, so a cold start pays for the models its first
invocation uses, not for every model its imports define (issue 17: bench/coldstart.py).

Settings stay an ordinary BaseModel: every invocation of every function reads them.

A field's description (the OpenAPI document's) is ``Field(description=...)``, not an attribute docstring:
``use_attribute_docstrings`` makes pydantic read and parse the class's source when the class is created, about a
millisecond a model at every cold start, whether or not a schema is ever asked for.
"""

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model built at first use (``defer_build``); a subclass's own ``model_config`` adds to this one."""

    model_config = ConfigDict(defer_build=True)
