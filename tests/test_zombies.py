"""The zombie-run automation: created once per server, with the documented trigger."""

from __future__ import annotations

from datetime import timedelta

from flows.zombies import AUTOMATION_NAME, ensure_zombie_automation, zombie_automation


def test_trigger_crashes_runs_after_three_missed_heartbeats() -> None:
    automation = zombie_automation(30)
    trigger = automation.trigger
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert trigger.within == timedelta(seconds=90)
    assert automation.actions[0].state.value == "CRASHED"
    # Only runs of this project's flows: another flow on a shared server may send heartbeats less often.
    related = trigger.match_related if isinstance(trigger.match_related, list) else [trigger.match_related]
    assert [spec["prefect.resource.name"] for spec in related] == [["clean-articles", "clean-shards"]]


def test_ensure_is_idempotent_on_a_server(prefect_backend) -> None:
    from prefect.automations import Automation

    first = ensure_zombie_automation(30)
    second = ensure_zombie_automation(30)
    assert first.id == second.id
    assert Automation.read(name=AUTOMATION_NAME).id == first.id
    # A new heartbeat frequency updates the automation in place.
    third = ensure_zombie_automation(60)
    assert third.id == first.id
    assert Automation.read(name=AUTOMATION_NAME).trigger.within == timedelta(seconds=180)
