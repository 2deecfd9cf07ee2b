"""Charger health: detectors, the health monitor's sweep (docs/health.md).

PLACEHOLDER (branch health-notifier): only here so the health monitor's handler imports; the health-detectors work
replaces this package.
"""
