"""A clear error, instead of a puzzling one, when `hitl_streams` is imported inside Temporal's sandbox.

Temporal re-imports a workflow's module (and what it imports) in a sandbox on each run unless the import
is passed through; `hitl_streams` must be (it is deterministic, and its dependencies do not import in the
sandbox). Nothing here imports temporalio: it is only consulted when the application already did.
"""

from __future__ import annotations

import sys

_workflow = sys.modules.get("temporalio.workflow")
if _workflow is not None and _workflow.unsafe.in_sandbox():
    raise ImportError(
        "hitl_streams is being imported inside Temporal's workflow sandbox: import it in a "
        "`with workflow.unsafe.imports_passed_through():` block (or add 'hitl_streams' to the worker's "
        "SandboxRestrictions passthrough modules)"
    )
