"""SafeWatch: special-equipment (特种设备) IoT safety monitoring.

The shared kernel: only what two or more processes use, each part with one owner
(`contract` the wire format, `schema` the database, `settings` the configuration).
"""

__version__ = "0.1.0"
