"""The machine lines the newer benches print (the older ones print their own, with what they measure beside)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import psutil


def brief() -> str:
    """Platform, CPUs, Python and the load average now."""
    return (f"machine: {platform.platform()}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def with_broker() -> str:
    """Platform, CPU model, memory, Python, Mosquitto's version and the load average at start."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[:1]
    return (f"machine: {platform.platform()}; {os.cpu_count()} CPUs ({cpu}); "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}; "
            f"{mosq[0] if mosq else 'mosquitto ?'}; load average {os.getloadavg()[0]:.2f} at start "
            "(the CPUs are shared)")
