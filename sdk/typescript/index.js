// agent-relay workflows in TypeScript and JavaScript: build the relay.yaml a workflow is,
// and run it with the agent-relay binary (`agent-relay run - --json --events-json`, the
// workflow on its stdin; each stdout line an event, the last the summary).
//
// Under `agent-relay run workflow.ts` (AGENT_RELAY_EMIT_CONFIG set), `.run()` hands the
// workflow back to that binary, which runs it as it runs a relay.yaml, and the script
// ends. Types: index.d.ts.

import { spawn } from "node:child_process";
import { accessSync, constants, renameSync, writeFileSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve, sep } from "node:path";
import { createInterface } from "node:readline";

import { dump } from "./yaml.js";

const EMIT_ENV = "AGENT_RELAY_EMIT_CONFIG";
const BIN_ENV = "AGENT_RELAY_BIN";

/** agent-relay could not run the workflow (no result to return). */
export class AgentRelayError extends Error {
  constructor(message, exitCode = null, stderr = "") {
    super(message);
    this.name = "AgentRelayError";
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The agent-relay binary cannot be started. */
export class AgentRelayNotFound extends AgentRelayError {
  constructor(message) {
    super(message);
    this.name = "AgentRelayNotFound";
  }
}

/** The binary refused the workflow before running anything (exit code 3). */
export class WorkflowInvalid extends AgentRelayError {
  constructor(message, exitCode, stderr) {
    super(message, exitCode, stderr);
    this.name = "WorkflowInvalid";
  }
}

const defined = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== null));

/** A configuration object as relay.yaml text. */
export function toYaml(config) {
  return dump(config);
}

function executable(p) {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The agent-relay program: `bin`, else $AGENT_RELAY_BIN, else `agent-relay` on PATH. */
export function findBinary(bin) {
  const name = bin || process.env[BIN_ENV] || "agent-relay";
  if (name.includes(sep)) {
    if (executable(name)) return name;
  } else {
    for (const dir of (process.env.PATH || "").split(delimiter)) {
      if (dir && executable(join(dir, name))) return join(dir, name);
    }
  }
  throw new AgentRelayNotFound(
    `cannot start agent-relay: \`${name}\` is not an executable program; install agent-relay on PATH or set ${BIN_ENV} to the binary`,
  );
}

function stringVars(vars) {
  const out = {};
  for (const [k, v] of Object.entries(vars || {})) {
    out[k] = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
  }
  return out;
}

function emitting() {
  return Boolean(process.env[EMIT_ENV]);
}

function handOver(handoff) {
  const path = process.env[EMIT_ENV];
  writeFileSync(path + ".tmp", JSON.stringify(handoff));
  renameSync(path + ".tmp", path);
  // The binary owns the run from here; nothing after `.run()` runs in the script.
  process.exit(0);
}

function toResult(summary, exitCode, events, stderr) {
  const steps = (summary.steps || []).map((s) => ({
    name: s.name,
    status: s.status,
    attempts: s.attempts ?? 0,
    exitCode: s.exitCode ?? null,
    durationMs: s.durationMs ?? 0,
    output: s.output ?? "",
    reason: s.reason ?? null,
  }));
  return {
    runId: summary.runId,
    workflow: summary.workflow,
    status: summary.status,
    durationMs: summary.durationMs ?? 0,
    reason: summary.reason ?? null,
    steps,
    exitCode,
    events,
    stderr,
    summary,
    get ok() {
      return this.status === "completed";
    },
    step(name) {
      const s = steps.find((x) => x.name === name);
      if (!s) throw new Error(`no step ${name} in run ${summary.runId}`);
      return s;
    },
    output(name) {
      return this.step(name).output;
    },
  };
}

function execute(args, stdinText, opts = {}) {
  let program;
  try {
    program = findBinary(opts.bin);
  } catch (e) {
    return Promise.reject(e);
  }
  const cmd = [...args, "--json", "--events-json"];
  for (const [k, v] of Object.entries(stringVars(opts.vars))) cmd.push("--var", `${k}=${v}`);
  const progress = opts.progress ?? Boolean(process.stderr.isTTY);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, ["run", ...cmd], {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: [stdinText === null ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const events = [];
    let summary = null;
    let stderr = "";
    let failed = null;
    child.on("error", (e) => {
      failed = new AgentRelayNotFound(`cannot start agent-relay (${program}): ${e.message}`);
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      if (progress) process.stderr.write(chunk);
    });
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    lines.on("line", (line) => {
      if (!line.trim()) return;
      let obj;
      try {
        obj = JSON.parse(line);
      } catch {
        return;
      }
      if (obj && typeof obj === "object" && "type" in obj && "ts" in obj) {
        events.push(obj);
        if (opts.onEvent) {
          try {
            opts.onEvent(obj);
          } catch (e) {
            // The caller gives up on the run: the binary is asked to cancel, which ends
            // its agents; the promise rejects with the error once it has exited.
            failed = failed || e;
            child.kill("SIGTERM");
          }
        }
      } else if (obj && typeof obj === "object" && "runId" in obj && "steps" in obj) {
        summary = obj;
      }
    });
    if (stdinText !== null) {
      child.stdin.on("error", () => {});
      child.stdin.end(stdinText);
    }
    let exited = null;
    let closed = false;
    const finish = () => {
      if (exited === null || !closed) return;
      if (failed) return reject(failed);
      const code = exited;
      if (summary === null) {
        const message = stderr.trim() || `agent-relay exited with status ${code}`;
        return reject(code === 3 ? new WorkflowInvalid(message, code, stderr) : new AgentRelayError(message, code, stderr));
      }
      resolvePromise(toResult(summary, code, events, stderr));
    };
    lines.on("close", () => {
      closed = true;
      finish();
    });
    child.on("close", (code, signal) => {
      exited = code ?? (signal ? 128 : 1);
      finish();
    });
  });
}

const RENAMED = { if_: "if", type_: "type" };

/** A relay.yaml file with one workflow, built a call at a time. */
export class Workflow {
  #name;
  #description;
  #swarm = {};
  #agents = [];
  #steps = [];
  #errorHandling = {};
  #variables = {};
  #extra = {};
  #workflowExtra = {};

  constructor(name) {
    this.#name = name;
  }

  description(text) {
    this.#description = text;
    return this;
  }

  /** `swarm.pattern`: dag, pipeline, fan-out, map-reduce, reflection, ... */
  pattern(name) {
    this.#swarm.pattern = name;
    return this;
  }

  /** `swarm.maxConcurrency`. */
  maxConcurrency(n) {
    this.#swarm.maxConcurrency = n;
    return this;
  }

  /** `swarm.timeoutMs`: a bound on the whole run. */
  timeout(ms) {
    this.#swarm.timeoutMs = ms;
    return this;
  }

  /** `swarm.channel`: the channel every agent joins. */
  channel(name) {
    this.#swarm.channel = name;
    return this;
  }

  /** Any other `swarm` field, by its relay.yaml name. */
  swarm(fields) {
    Object.assign(this.#swarm, defined(fields));
    return this;
  }

  /** A declared variable (`variables`), with its default. */
  variable(name, { default: dflt, description } = {}) {
    this.#variables[name] = defined({ description, default: dflt });
    return this;
  }

  /** A top-level field the builder has no method for, by its relay.yaml name. */
  set(key, value) {
    this.#extra[key] = value;
    return this;
  }

  /** A field of the workflow itself (`preflight`, `onError`). */
  workflowField(key, value) {
    this.#workflowExtra[key] = value;
    return this;
  }

  /** `errorHandling`: strategy, retries of steps that set none, pause between attempts. */
  onError(strategy, { maxRetries, retryDelayMs, ...fields } = {}) {
    Object.assign(this.#errorHandling, defined({ strategy, maxRetries, retryDelayMs, ...fields }));
    return this;
  }

  /** An agent; `retries` is its `constraints.retries`. */
  agent(name, { cli, role, model, retries, interactive, ...fields } = {}) {
    const agent = { name, cli, ...defined({ role, model, interactive }), ...defined(fields) };
    if (retries !== undefined && retries !== null) agent.constraints = { ...(agent.constraints || {}), retries };
    this.#agents.push(agent);
    return this;
  }

  /** A step: an agent's `task`, or a shell `command` (a deterministic step). */
  step(name, { agent, task, dependsOn, verification, command, ...fields } = {}) {
    const step = { name };
    if (command !== undefined && fields.type === undefined) step.type = "deterministic";
    Object.assign(step, defined({ agent, task, command, dependsOn, verification }));
    for (const [k, v] of Object.entries(defined(fields))) step[RENAMED[k] || k] = v;
    this.#steps.push(step);
    return this;
  }

  /** The relay.yaml file as an object, with the format's field names. */
  toConfig() {
    const config = { version: "1.0", name: this.#name };
    if (this.#description !== undefined) config.description = this.#description;
    if (Object.keys(this.#variables).length) config.variables = structuredClone(this.#variables);
    if (Object.keys(this.#swarm).length) config.swarm = { ...this.#swarm };
    config.agents = structuredClone(this.#agents);
    const wf = { name: this.#name };
    if (this.#description !== undefined) wf.description = this.#description;
    Object.assign(wf, structuredClone(this.#workflowExtra));
    wf.steps = structuredClone(this.#steps);
    config.workflows = [wf];
    if (Object.keys(this.#errorHandling).length) config.errorHandling = { ...this.#errorHandling };
    Object.assign(config, structuredClone(this.#extra));
    return config;
  }

  /** The relay.yaml text. */
  toYaml() {
    return toYaml(this.toConfig());
  }

  /**
   * Runs the workflow with the agent-relay binary. A failed run resolves to a result with
   * status "failed"; a refused workflow rejects with WorkflowInvalid, a binary that cannot
   * start with AgentRelayNotFound.
   */
  run(opts = {}) {
    if (emitting()) handOver({ config: this.toYaml(), vars: stringVars(opts.vars) });
    const args = ["-", ...(opts.rehearse ? ["--rehearse"] : []), ...(opts.args || [])];
    return execute(args, this.toYaml(), opts);
  }
}

/** A new workflow called `name`. */
export function workflow(name) {
  return new Workflow(name);
}

/** Runs the relay.yaml file at `path` (`workflow`: which of its workflows). */
export function runWorkflow(path, opts = {}) {
  if (emitting()) {
    const file = isAbsolute(path) ? path : resolve(opts.cwd || process.cwd(), path);
    handOver({ file, vars: stringVars(opts.vars), workflow: opts.workflow ?? null });
  }
  const args = [path, ...(opts.workflow ? ["--workflow", opts.workflow] : []), ...(opts.rehearse ? ["--rehearse"] : [])];
  return execute(args, null, opts);
}
