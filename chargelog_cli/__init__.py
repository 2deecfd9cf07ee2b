"""The `chargelog` command line."""
