#!/usr/bin/env python3
"""Assembles PTX files with ptxas for the given architectures and prints, per kernel, the
registers, stack frame and spill bytes that `ptxas -v` reports. Exits 1 on an assembly error or
on spills in a kernel of a file named with --no-spills. Standard library only (no pinned
packages needed); called by scripts/check_kernels.sh."""

import argparse
import os
import re
import subprocess
import sys

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGS = re.compile(r"Used (\d+) registers")


def parse(text):
    """Yields dicts (kernel, arch, regs, stack, spill_st, spill_ld) from `ptxas -v` output."""
    cur = None
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            if cur is not None:
                yield cur
            cur = {"kernel": m.group(1), "arch": m.group(2), "regs": None,
                   "stack": 0, "spill_st": 0, "spill_ld": 0}
            continue
        if cur is None:
            continue
        m = PROPS.search(line)
        if m:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = map(int, m.groups())
        m = REGS.search(line)
        if m:
            cur["regs"] = int(m.group(1))
    if cur is not None:
        yield cur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ptxas", required=True)
    ap.add_argument("--archs", nargs="+", required=True)
    ap.add_argument("--no-spills", nargs="*", default=[],
                    help="PTX file names whose kernels must not spill")
    ap.add_argument("ptx", nargs="+")
    args = ap.parse_args()

    failed = False
    rows = []
    for path in args.ptx:
        name = os.path.basename(path)
        for arch in args.archs:
            p = subprocess.run([args.ptxas, f"-arch={arch}", "-v", "-o", os.devnull, path],
                               capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL: ptxas -arch={arch} {path}:\n{p.stdout}{p.stderr}")
                failed = True
                continue
            found = list(parse(p.stdout + p.stderr))
            if not found:
                print(f"FAIL: no kernel found in the ptxas output for {path} ({arch})")
                failed = True
            for r in found:
                r["file"] = name
                rows.append(r)

    print(f"{'file':<15} {'kernel':<24} {'arch':<6} {'regs':>4} {'stack':>6} "
          f"{'spill st':>9} {'spill ld':>9}")
    for r in rows:
        spills = r["spill_st"] + r["spill_ld"]
        flag = ""
        if spills and r["file"] in args.no_spills:
            flag = "  <- FAIL: spills in a kernel that must not spill"
            failed = True
        elif spills:
            flag = "  <- spills"
        print(f"{r['file']:<15} {r['kernel']:<24} {r['arch']:<6} {r['regs']!s:>4} "
              f"{r['stack']:>6} {r['spill_st']:>9} {r['spill_ld']:>9}{flag}")
    if failed:
        print("kernel check FAILED")
        return 1
    print(f"kernel check passed: {len(rows)} kernel builds, no assembly error, "
          f"no spills in {', '.join(args.no_spills) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
