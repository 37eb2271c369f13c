"""What machine a benchmark ran on, for the header of its report."""

from __future__ import annotations

import os
import platform


def cpu_description() -> str:
    """The CPU's model name, family and model numbers and last-level cache size (Linux), e.g.
    "AMD EPYC (family 23, model 1; L3 8192K)": hosts that share a model name ("AMD EPYC") can
    differ in generation and cache, and ratios move with them (W1's working set is a few MB)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                elif not key:  # the end of the first processor's block
                    break
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    details = [f"family {fields['cpu family']}, model {fields['model']}"] if "cpu family" in fields else []
    caches = "/sys/devices/system/cpu/cpu0/cache"
    try:
        levels = []
        for index in sorted(os.listdir(caches)):
            if index.startswith("index"):
                with open(os.path.join(caches, index, "level")) as f:
                    level = int(f.read())
                with open(os.path.join(caches, index, "size")) as f:
                    levels.append((level, f.read().strip()))
        if levels:
            level, size = max(levels)
            details.append(f"L{level} {size}")
    except (OSError, ValueError):
        pass
    return f"{cpu} ({'; '.join(details)})" if details else cpu
