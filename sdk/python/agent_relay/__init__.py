"""agent-relay workflows in Python: build the relay.yaml a workflow is, and run it with
the agent-relay binary.

    from agent_relay import workflow

    result = (
        workflow("ship")
        .pattern("dag")
        .max_concurrency(2)
        .agent("dev", cli="claude", role="developer", interactive=False)
        .step("plan", agent="dev", task="Plan it. End with PLAN_READY.",
              verification={"type": "output_contains", "value": "PLAN_READY"})
        .step("build", command="make", depends_on=["plan"])
        .on_error("retry", max_retries=1)
        .run()
    )
    print(result.status, result.output("plan"))

Keyword arguments name relay.yaml fields in snake_case (`depends_on` is `dependsOn`,
`timeout_ms` is `timeoutMs`, `if_` is `if`); values (dicts, lists) are written as given,
in the format's own spelling. Nothing is checked here: the binary validates the workflow
and reports problems with the format's names.

`agent-relay run workflow.py` runs a script using this module: `.run()` then hands the
workflow to that binary, which runs it as it runs a relay.yaml, and the script ends.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional

from . import _yaml
from ._run import (
    AgentRelayError,
    AgentRelayNotFound,
    RunResult,
    StepResult,
    WorkflowInvalid,
    emitting,
    execute,
    find_binary,
    hand_over,
)

__all__ = [
    "AgentRelayError",
    "AgentRelayNotFound",
    "RunResult",
    "StepResult",
    "Workflow",
    "WorkflowInvalid",
    "find_binary",
    "run_yaml",
    "to_yaml",
    "workflow",
]

__version__ = "0.1.0"

# Keyword arguments whose relay.yaml name is not their camelCase.
_RENAMED = {"if_": "if", "type_": "type", "loop_": "loop", "use_": "use"}


def _camel(name: str) -> str:
    if name in _RENAMED:
        return _RENAMED[name]
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _fields(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    return {_camel(k): v for k, v in kwargs.items() if v is not None}


def to_yaml(config: Mapping[str, Any]) -> str:
    """A configuration dict as relay.yaml text."""
    return _yaml.dump(dict(config))


class Workflow:
    """A relay.yaml file with one workflow, built a call at a time."""

    def __init__(self, name: str):
        self._name = name
        self._description: Optional[str] = None
        self._swarm: Dict[str, Any] = {}
        self._agents: List[Dict[str, Any]] = []
        self._steps: List[Dict[str, Any]] = []
        self._error_handling: Dict[str, Any] = {}
        self._variables: Dict[str, Dict[str, Any]] = {}
        self._extra: Dict[str, Any] = {}
        self._workflow_extra: Dict[str, Any] = {}

    # Run-wide settings.

    def description(self, text: str) -> "Workflow":
        self._description = text
        return self

    def pattern(self, name: str) -> "Workflow":
        """`swarm.pattern`: dag, pipeline, fan-out, map-reduce, reflection, ..."""
        self._swarm["pattern"] = name
        return self

    def max_concurrency(self, n: int) -> "Workflow":
        """`swarm.maxConcurrency`: most steps running at once."""
        self._swarm["maxConcurrency"] = n
        return self

    def timeout(self, ms: int) -> "Workflow":
        """`swarm.timeoutMs`: a bound on the whole run, in milliseconds."""
        self._swarm["timeoutMs"] = ms
        return self

    def channel(self, name: str) -> "Workflow":
        """`swarm.channel`: the channel every agent joins."""
        self._swarm["channel"] = name
        return self

    def swarm(self, **fields: Any) -> "Workflow":
        """Any other `swarm` field (`token_budget=`, `idle_nudge=`, ...)."""
        self._swarm.update(_fields(fields))
        return self

    def variable(self, name: str, default: Any = None, description: Optional[str] = None) -> "Workflow":
        """A declared variable (`variables`), with its default."""
        self._variables[name] = _fields({"description": description, "default": default})
        return self

    def set(self, key: str, value: Any) -> "Workflow":
        """A top-level field the builder has no method for (`state`, `coordination`, ...),
        by its relay.yaml name."""
        self._extra[key] = value
        return self

    def on_error(
        self,
        strategy: str,
        max_retries: Optional[int] = None,
        retry_delay_ms: Optional[int] = None,
        **fields: Any,
    ) -> "Workflow":
        """`errorHandling`: what a failed step does (fail, skip, continue, retry), the
        retries of steps that set none, the pause between attempts."""
        self._error_handling.update(
            _fields({"strategy": strategy, "max_retries": max_retries, "retry_delay_ms": retry_delay_ms, **fields})
        )
        return self

    # Agents and steps.

    def agent(
        self,
        name: str,
        cli: str,
        role: Optional[str] = None,
        model: Optional[str] = None,
        retries: Optional[int] = None,
        interactive: Optional[bool] = None,
        **fields: Any,
    ) -> "Workflow":
        """An agent run by `cli` (claude, codex, gemini, aider, goose, opencode, droid,
        cursor). `retries` is its `constraints.retries`."""
        agent = {"name": name, "cli": cli, **_fields({"role": role, "model": model, "interactive": interactive})}
        agent.update(_fields(fields))
        if retries is not None:
            agent.setdefault("constraints", {})["retries"] = retries
        self._agents.append(agent)
        return self

    def step(
        self,
        name: str,
        agent: Optional[str] = None,
        task: Optional[str] = None,
        depends_on: Optional[List[str]] = None,
        verification: Optional[Mapping[str, Any]] = None,
        command: Optional[str] = None,
        **fields: Any,
    ) -> "Workflow":
        """A step: an agent's `task`, or a shell `command` (a deterministic step)."""
        step: Dict[str, Any] = {"name": name}
        if command is not None and "type" not in fields and "type_" not in fields:
            step["type"] = "deterministic"
        step.update(
            _fields(
                {
                    "agent": agent,
                    "task": task,
                    "command": command,
                    "depends_on": list(depends_on) if depends_on is not None else None,
                    "verification": dict(verification) if verification is not None else None,
                }
            )
        )
        step.update(_fields(fields))
        self._steps.append(step)
        return self

    def workflow_field(self, key: str, value: Any) -> "Workflow":
        """A field of the workflow itself (`preflight`, `onError`), by its relay.yaml name."""
        self._workflow_extra[key] = value
        return self

    # Output.

    def to_config(self) -> Dict[str, Any]:
        """The relay.yaml file as a dict, with the format's field names."""
        config: Dict[str, Any] = {"version": "1.0", "name": self._name}
        if self._description is not None:
            config["description"] = self._description
        if self._variables:
            config["variables"] = {k: dict(v) for k, v in self._variables.items()}
        if self._swarm:
            config["swarm"] = dict(self._swarm)
        config["agents"] = [dict(a) for a in self._agents]
        wf: Dict[str, Any] = {"name": self._name}
        if self._description is not None:
            wf["description"] = self._description
        wf.update(self._workflow_extra)
        wf["steps"] = [dict(s) for s in self._steps]
        config["workflows"] = [wf]
        if self._error_handling:
            config["errorHandling"] = dict(self._error_handling)
        config.update(self._extra)
        return config

    def to_yaml(self) -> str:
        """The relay.yaml text."""
        return to_yaml(self.to_config())

    def run(
        self,
        vars: Optional[Mapping[str, Any]] = None,
        on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
        rehearse: bool = False,
        bin: Optional[str] = None,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        progress: Optional[bool] = None,
        args: Optional[List[str]] = None,
    ) -> RunResult:
        """Runs the workflow with the agent-relay binary and returns the result.

        `vars` fill `{{name}}`; `on_event` is called with each event (a dict, as in the
        run's events.jsonl) while the run goes; `rehearse` stands in rehearsal agents
        for the real CLIs; `progress` shows the binary's progress on stderr (default:
        when stderr is a terminal). A failed run is a result with status `failed`;
        a workflow the binary refuses raises WorkflowInvalid, a binary that cannot
        start AgentRelayNotFound.
        """
        if emitting():
            hand_over({"config": self.to_yaml(), "vars": _stringify(vars)})
        extra = list(args or [])
        if rehearse:
            extra.append("--rehearse")
        return execute(["-", *extra], self.to_yaml(), vars, on_event, bin, cwd, _env(env), progress)


def _stringify(vars):
    from ._run import _string_vars

    return _string_vars(vars)


def _env(env):
    if env is None:
        return None
    import os

    merged = dict(os.environ)
    merged.update(env)
    return merged


def workflow(name: str) -> Workflow:
    """A new workflow called `name`."""
    return Workflow(name)


def run_yaml(
    path: str,
    workflow: Optional[str] = None,
    vars: Optional[Mapping[str, Any]] = None,
    on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
    rehearse: bool = False,
    bin: Optional[str] = None,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    progress: Optional[bool] = None,
) -> RunResult:
    """Runs the relay.yaml file at `path` (`workflow`: which of its workflows)."""
    if emitting():
        import os

        hand_over({"file": os.path.abspath(path), "vars": _stringify(vars), "workflow": workflow})
    args = [str(path)]
    if workflow:
        args += ["--workflow", workflow]
    if rehearse:
        args.append("--rehearse")
    return execute(args, None, vars, on_event, bin, cwd, _env(env), progress)
