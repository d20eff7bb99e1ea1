"""Mark flow runs whose process died (SIGKILL, OOM, lost machine) as Crashed instead of Running forever.

A run killed outright cannot report its own end. Flow runs of deployments send a heartbeat event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds; this automation (Prefect's documented zombie-flow
recipe) changes a run to Crashed when its heartbeats stop without a final state. Created once per
server by ``python -m flows.deployments`` (idempotent, by name).
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

AUTOMATION_NAME = "boilerstrip: crash zombie flow runs"
OUR_FLOWS = ("clean-articles", "clean-shards")


def zombie_automation(heartbeat_seconds: int) -> Automation:
    """Crash a run that sent a heartbeat and then nothing (no heartbeat, no final state) for 3 beats."""
    return Automation(
        name=AUTOMATION_NAME,
        description="A flow run whose heartbeats stopped without a final state is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            # Only this project's runs: another flow on the same server may beat less often than ours.
            match_related=ResourceSpecification({"prefect.resource.role": "flow",
                                                 "prefect.resource.name": list(OUR_FLOWS)}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * heartbeat_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="No heartbeat: the flow run's process died (killed or lost).")],
    )


def ensure_zombie_automation(heartbeat_seconds: int) -> Automation:
    """Create the automation on the current server, or bring the one with its name up to date (a heartbeat
    frequency changed since it was made would crash live runs, or leave dead ones Running)."""
    try:
        existing = Automation.read(name=AUTOMATION_NAME)
    except ValueError:  # "Automation ... not found"
        existing = None
    wanted = zombie_automation(heartbeat_seconds)
    if existing is None:
        return wanted.create()
    if existing.trigger != wanted.trigger or existing.actions != wanted.actions:
        existing.trigger, existing.actions = wanted.trigger, wanted.actions
        existing.update()
    return existing
