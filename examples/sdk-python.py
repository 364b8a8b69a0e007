"""A workflow written in Python with the agent-relay SDK.

    agent-relay run examples/sdk-python.py --rehearse      # the binary runs it
    python3 examples/sdk-python.py                          # the SDK runs the binary

Under `agent-relay run`, `.run()` hands the workflow to the binary (progress, run
directory, exit code, --var, -w and --rehearse as for a relay.yaml); run with python3
(`pip install ./sdk/python`), it starts `agent-relay run -` itself and returns the result.
"""

from agent_relay import workflow

checks = ["lint", "test"]

wf = (
    workflow("sdk-python")
    .description("Plan a change, run checks built from a Python list, review")
    .pattern("dag")
    .max_concurrency(2)
    .timeout(600_000)
    .variable("feature", default="a /health endpoint")
    .agent("planner", cli="claude", role="planner", interactive=False)
    .agent("reviewer", cli="codex", role="reviewer", interactive=False, retries=1)
    .step(
        "plan",
        agent="planner",
        task="Plan how to add {{feature}}.\nEnd with the line PLAN_READY.",
        verification={"type": "output_contains", "value": "PLAN_READY"},
    )
)
for check in checks:
    wf.step(check, command=f"echo {check}: ok", depends_on=["plan"])
wf.step(
    "review",
    agent="reviewer",
    task="Review the plan:\n{{steps.plan.output}}",
    depends_on=checks,
).on_error("retry", max_retries=1, retry_delay_ms=100)

if __name__ == "__main__":
    result = wf.run(
        vars={"feature": "a /health endpoint"},
        on_event=lambda e: print(e["type"], e.get("step", "")),
        rehearse=True,
    )
    print(result.status, [(s.name, s.status) for s in result.steps])
