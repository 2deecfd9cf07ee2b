"""Fake vendor servers on 127.0.0.1 for tests, benchmarks and the local stack.

``base`` is the framework (the HTTP server, injectable faults, a controllable clock, counters, live traffic),
``traffic`` generates realistic OCPP 1.6 charger traffic - healthy by default, with opt-in misbehaviours for
the health alerts - and each vendor module (``ocpplab``, ...) serves that traffic the way the vendor's
documented API does, quirks included.
"""
