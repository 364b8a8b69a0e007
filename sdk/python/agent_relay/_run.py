"""Running a workflow with the agent-relay binary, and what a run returns.

The binary runs as a subprocess: `agent-relay run - --json --events-json`, the workflow
on its stdin. Each line it prints on stdout is an event, and the last one the summary.
Under `agent-relay run workflow.py` (AGENT_RELAY_EMIT_CONFIG set), nothing is run here:
the workflow is handed back to that binary, which runs it, and the script ends.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

EMIT_ENV = "AGENT_RELAY_EMIT_CONFIG"
BIN_ENV = "AGENT_RELAY_BIN"


class AgentRelayError(Exception):
    """agent-relay could not run the workflow (no result to return)."""

    def __init__(self, message, exit_code=None, stderr=""):
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


class AgentRelayNotFound(AgentRelayError, FileNotFoundError):
    """The agent-relay binary cannot be started."""


class WorkflowInvalid(AgentRelayError):
    """The binary refused the workflow before running anything (exit code 3)."""


@dataclass
class StepResult:
    """One step of a finished run."""

    name: str
    status: str
    attempts: int
    exit_code: Optional[int]
    duration_ms: int
    output: str
    reason: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass
class RunResult:
    """A finished run: `status` is completed, failed, cancelled or needs_human."""

    run_id: str
    workflow: str
    status: str
    duration_ms: int
    steps: List[StepResult]
    reason: Optional[str] = None
    exit_code: int = 0
    events: List[Dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    summary: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def step(self, name: str) -> StepResult:
        """The step called `name`."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step {name!r} in run {self.run_id} (steps: {', '.join(s.name for s in self.steps)})")

    def output(self, name: str) -> str:
        """The output of step `name`."""
        return self.step(name).output


def _result(summary, exit_code, events, stderr):
    steps = [
        StepResult(
            name=s.get("name", ""),
            status=s.get("status", ""),
            attempts=s.get("attempts", 0),
            exit_code=s.get("exitCode"),
            duration_ms=s.get("durationMs", 0),
            output=s.get("output", ""),
            reason=s.get("reason"),
        )
        for s in summary.get("steps", [])
    ]
    return RunResult(
        run_id=summary.get("runId", ""),
        workflow=summary.get("workflow", ""),
        status=summary.get("status", ""),
        duration_ms=summary.get("durationMs", 0),
        steps=steps,
        reason=summary.get("reason"),
        exit_code=exit_code,
        events=events,
        stderr=stderr,
        summary=summary,
    )


def find_binary(bin=None) -> str:
    """The agent-relay program: `bin`, else $AGENT_RELAY_BIN, else `agent-relay` on PATH."""
    name = bin or os.environ.get(BIN_ENV) or "agent-relay"
    found = name if os.sep in name and os.access(name, os.X_OK) else shutil.which(name)
    if not found:
        raise AgentRelayNotFound(
            f"cannot start agent-relay: `{name}` is not an executable program; install "
            f"agent-relay on PATH or set {BIN_ENV} to the binary"
        )
    return found


def emitting() -> bool:
    """Whether the script runs under `agent-relay run SCRIPT` (the workflow is handed back)."""
    return bool(os.environ.get(EMIT_ENV))


def hand_over(handoff: Mapping[str, Any]):
    """Writes what the binary runs to $AGENT_RELAY_EMIT_CONFIG and ends the script."""
    path = os.environ[EMIT_ENV]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(handoff, f, ensure_ascii=False)
    os.replace(tmp, path)
    sys.stdout.flush()
    # The binary owns the run from here; nothing after `.run()` runs in the script.
    raise SystemExit(0)


def _string_vars(vars):
    out = {}
    for k, v in (vars or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        out[str(k)] = str(v)
    return out


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        try:
            pipe.close()
        except OSError:
            pass


def execute(
    args: List[str],
    stdin_text: Optional[str],
    vars=None,
    on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
    bin=None,
    cwd=None,
    env=None,
    progress=None,
) -> RunResult:
    """Runs `agent-relay run ARGS --json --events-json` and returns its result."""
    program = find_binary(bin)
    cmd = [program, "run", *args, "--json", "--events-json"]
    for k, v in _string_vars(vars).items():
        cmd += ["--var", f"{k}={v}"]
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as e:
        raise AgentRelayNotFound(f"cannot start agent-relay ({program}): {e}") from e

    err_chunks: List[str] = []

    def read_stderr():
        for line in proc.stderr:
            err_chunks.append(line)
            if progress:
                sys.stderr.write(line)
                sys.stderr.flush()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if stdin_text is not None:
        try:
            proc.stdin.write(stdin_text)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    events: List[Dict[str, Any]] = []
    summary = None
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "type" in obj and "ts" in obj:
                events.append(obj)
                if on_event is not None:
                    on_event(obj)
            elif isinstance(obj, dict) and "runId" in obj and "steps" in obj:
                summary = obj
    except BaseException:
        # The caller gives up on the run (its on_event raised, Ctrl+C): the binary is
        # asked to cancel, which ends its agents, and is waited for.
        _stop(proc)
        reader.join()
        raise
    code = proc.wait()
    reader.join()
    proc.stdout.close()
    proc.stderr.close()
    stderr = "".join(err_chunks)
    if summary is None:
        message = stderr.strip() or f"agent-relay exited with status {code}"
        if code == 3:
            raise WorkflowInvalid(message, code, stderr)
        raise AgentRelayError(message, code, stderr)
    return _result(summary, code, events, stderr)
