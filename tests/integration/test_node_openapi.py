"""The node's OpenAPI document is true: schemathesis runs every operation against a real node.

Every check schemathesis has (``--checks all``: status codes, content types, response schemas,
positive data accepted, negative data rejected, unsupported methods, resources that stay
available after they were created, ...) over every phase (schema examples, boundary coverage,
random fuzzing, stateful sequences following the document's links). The run is bounded: a fixed
number of examples per operation, a fixed seed (a failure replays), a per-request timeout, and
a deadline for the whole run. Every request and answer lands in a HAR file, which the test reads
to say how many requests were made and that none was answered with a 5xx.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from tests.support.processes import running_node

# Bounds of the node under test: /work stays cheap however its query is drawn (the document
# states these bounds, so schemathesis draws within them), and the key limit is small enough
# for the boundary phase to reach it.
NODE_FLAGS = [
    "--max-load-factor", "12", "--max-io-millis", "20", "--max-key-length", "32",
]  # fmt: skip
MAX_EXAMPLES = 100
RUN_TIMEOUT_S = 540

# The value's compact-JSON size and a full store are limits no JSON Schema keyword can state;
# the document lists both (413, 507), so a valid request may meet them.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "413", "507"]
"""


def test_every_operation_answers_as_the_document_says(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    har = tmp_path / "requests.har"
    with running_node(workers=1, load_factor=5, extra=NODE_FLAGS) as node:
        document = httpx.get(f"{node.url}/openapi.json", timeout=10).json()
        # fmt: off
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
            "run", f"{node.url}/openapi.json",
            "--checks", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", str(MAX_EXAMPLES),
            "--seed", "20260901",
            "--workers", "1",
            "--request-timeout", "30",
            "--generation-database", "none",
            "--report", "har", "--report-har-path", str(har),
            "--no-color",
        ]
        # fmt: on
        run = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]

    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(entry["response"]["status"] for entry in entries)
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    print(f"\nschemathesis: {len(entries)} requests, {server_errors} answered 5xx: {statuses}")
    assert server_errors == 0
    declared = {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }
    tried = {
        (entry["request"]["method"], "/" + entry["request"]["url"].split("/", 3)[3])
        for entry in entries
    }
    for method, path in declared:
        prefix = path.split("{")[0]
        assert any(m == method and p.startswith(prefix) for m, p in tried), (method, path)
