"""NodeLab's benchmark harness: ``python -m bench`` (``make bench``).

Every figure is measured in the run that prints it, side by side with its anchor (wrk, bare
frameworks, a raw aiohttp loop, the true service time, the capacity model), and reported as a
ratio against a target. See bench/README.md for how to read the table.
"""
