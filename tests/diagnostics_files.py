"""A received diagnostics file, stored as the upload path stores it: the object under diagnostics/, then its
record. For tests of what reads files back (the API, the CLI)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from chargelog import aws, stores
from chargelog.models.diagnostics import DiagnosticsFile, UploadLimits, object_key
from chargelog_local.provision import LocalStack

CHARGER = "CP-1"


def store_file(
    stack: LocalStack, request_id: str, at: datetime, name: str, data: bytes, **fields: Any
) -> DiagnosticsFile:
    """``fields`` override the defaults (a gzip file PUT as is)."""
    key = object_key(CHARGER, request_id, at, name)
    aws.client("s3").put_object(Bucket=stack.refs["DiagnosticsBucket"], Key=key, Body=data)
    file = DiagnosticsFile.model_validate(
        {
            "request_id": request_id,
            "charger_id": CHARGER,
            "key": key,
            "filename": name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": "application/gzip",
            "compression": "gzip",
            "received_at": at,
            "upload_method": "PUT",
        }
        | fields
    )
    assert stores.diagnostics().put_file(file, UploadLimits()) == "recorded"
    return file
