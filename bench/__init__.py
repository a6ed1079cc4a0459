"""Benchmarks: `make bench` (or `python -m bench`), never part of `make test`.

Every number is printed next to the numbers it is compared with, measured in the same run on the
same machine: absolute figures vary by machine and load, the ratios are what the targets judge.
"""
