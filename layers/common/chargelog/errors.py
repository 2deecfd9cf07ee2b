"""Domain errors. The API maps each to an HTTP status and a problem body in one place."""

from __future__ import annotations


class ChargelogError(Exception):
    """Base of errors a client can be told about."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ChargelogError):
    status = 404
    title = "Not Found"


class ConflictError(ChargelogError):
    status = 409
    title = "Conflict"


class PayloadTooLargeError(ChargelogError):
    status = 413
    title = "Content Too Large"


class UnsupportedMediaTypeError(ChargelogError):
    status = 415
    title = "Unsupported Media Type"


class VendorNotConfiguredError(ChargelogError):
    """The vendor's secret lacks its base URL or credentials."""

    status = 409
    title = "Vendor Not Configured"


class VendorFailedError(ChargelogError):
    """The vendor refused the credentials, failed or answered nonsense: its message, never a secret."""

    status = 502
    title = "Bad Gateway"
