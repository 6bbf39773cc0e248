"""Embedded fallbacks for `safewatch demo` on a machine with neither PostgreSQL nor Mosquitto."""
