"""``python -m node_service``: the same program as ``nodelab node``."""

import sys

from node_service.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
