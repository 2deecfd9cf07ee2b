"""Route groups of the chargelog REST API, included by the API function's handler."""
