#!/usr/bin/env python3
"""Writes a sim lab of N drives, each one firmware hop away (1.04 -> 1.12) with a probe delay and
a flash delay, so `labctl apply` has exactly N probes and N flashes to do.

usage: gen_lab.py N OUT.yaml [--probe-delay 100ms] [--flash-delay 1s] [--at-target]
"""
import argparse

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("out")
ap.add_argument("--probe-delay", default="100ms")
ap.add_argument("--flash-delay", default="1s")
ap.add_argument("--at-target", action="store_true", help="devices already run the target (a converged lab)")
a = ap.parse_args()
with open(a.out, "w") as f:
    f.write("version: 1\nsite: bench\ndevices:\n")
    installed = "1.12" if a.at_target else "1.04"
    for i in range(a.n):
        f.write(f"  - {{name: d{i:05d}, type: sim-drive, model: UJ240AS, firmware: \"1.12\", accept-brick-risk: true, "
                f"sim: {{firmware: \"{installed}\", probe-delay: {a.probe_delay}, flash-delay: {a.flash_delay}}}}}\n")
