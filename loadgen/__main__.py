"""``python -m loadgen``: the same program as ``nodelab load``."""

import sys

from loadgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
