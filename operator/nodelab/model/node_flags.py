"""The node settings a lab's node spec asks for beyond the work: phase 5's protection and
phase 6's slow pool, as ``node_service.settings.node_argv`` fields. Both runtimes spell a
node's flags from here, so an operator pod and a local replica of one spec run alike."""

from __future__ import annotations

from nodelab.model.spec import ProtectionSpec, SlowPoolSpec

__all__ = ["node_flag_fields"]


def node_flag_fields(
    protection: ProtectionSpec | None, slow_pool: SlowPoolSpec | None = None
) -> dict[str, int | float]:
    """The ``node_argv`` fields of a node with ``protection`` and, for a node of the slow pool,
    ``slow_pool``'s factor and extra wait; a setting the spec leaves out is left out here too
    (the node's default holds)."""
    fields: dict[str, int | float] = {}
    if protection is not None:
        fields["max_queue"] = protection.max_queue
        fields["retry_after_seconds"] = protection.retry_after_seconds
        if protection.rate_limit is not None:
            fields["rate_limit"] = protection.rate_limit
        if protection.rate_burst is not None:
            fields["rate_burst"] = protection.rate_burst
    if slow_pool is not None:
        if slow_pool.service_factor is not None:
            fields["service_factor"] = slow_pool.service_factor
        if slow_pool.extra_millis is not None:
            fields["extra_millis"] = slow_pool.extra_millis
    return fields
