"""chargelog: collects EV charger logs from vendor platforms and serves them."""

__version__ = "0.1.0"
