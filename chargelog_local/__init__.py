"""The local stack: moto's server, the vendor simulators and the template's API, schedules and queues, on loopback."""
