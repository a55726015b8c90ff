"""The NodeLab node: health, key-value data, simulated work and metrics behind uvicorn.

Entry points: ``node_service.cli.main`` (``nodelab node``), ``node_service.app.create_app``.
Nothing is imported here, so ``nodelab node --help`` does not pay for FastAPI.
"""

__all__: list[str] = []
