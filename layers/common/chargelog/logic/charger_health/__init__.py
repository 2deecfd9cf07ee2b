"""Charger health (docs/health.md): the detectors (pure), the monitor that applies them to the table, and the health
monitor function's pass over every charger."""
