// Types of the agent-relay SDK (index.js).

/** An event of a run, as in its events.jsonl: `{"type": "step:started", "ts": ..., ...}`. */
export interface RunEvent {
  type: string;
  ts: string;
  [field: string]: unknown;
}

export type StepStatus = "completed" | "failed" | "skipped";
export type RunStatus = "completed" | "failed" | "cancelled" | "needs_human";

/** One step of a finished run. */
export interface StepResult {
  name: string;
  status: StepStatus;
  attempts: number;
  exitCode: number | null;
  durationMs: number;
  output: string;
  reason: string | null;
}

/** A finished run. */
export interface RunResult {
  runId: string;
  workflow: string;
  status: RunStatus;
  durationMs: number;
  reason: string | null;
  steps: StepResult[];
  /** The binary's exit code: 0 completed, 1 failed, 2 needs a person, 130 cancelled. */
  exitCode: number;
  events: RunEvent[];
  /** What the binary printed on stderr (progress, the summary). */
  stderr: string;
  /** The `--json` summary as printed. */
  summary: Record<string, unknown>;
  readonly ok: boolean;
  step(name: string): StepResult;
  output(name: string): string;
}

export interface RunOptions {
  /** Values of `{{name}}` variables. */
  vars?: Record<string, string | number | boolean | object>;
  /** Called with each event while the run goes. */
  onEvent?: (event: RunEvent) => void;
  /** Rehearsal agents stand in for the real CLIs. */
  rehearse?: boolean;
  /** The agent-relay binary (default: $AGENT_RELAY_BIN, else `agent-relay` on PATH). */
  bin?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Show the binary's progress on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Further arguments of `agent-relay run`. */
  args?: string[];
}

export interface RunWorkflowOptions extends Omit<RunOptions, "args"> {
  /** Which workflow of the file. */
  workflow?: string;
}

export type Cli =
  | "claude"
  | "codex"
  | "gemini"
  | "aider"
  | "goose"
  | "opencode"
  | "droid"
  | "cursor"
  | "cursor-agent"
  | "agent";

export type OnError = "fail" | "fail-fast" | "skip" | "continue" | "retry";

export interface Verification {
  type: "output_contains" | "exit_code" | "file_exists" | "custom" | "checklist";
  value?: string | number;
  description?: string;
  timeoutMs?: number;
  items?: { id: string; title?: string }[];
}

export interface AgentOptions {
  cli: Cli;
  role?: string;
  model?: string;
  /** `constraints.retries`. */
  retries?: number;
  interactive?: boolean;
  /** Any other agent field, by its relay.yaml name. */
  [field: string]: unknown;
}

export interface StepOptions {
  agent?: string;
  task?: string;
  /** A shell command: makes the step deterministic. */
  command?: string;
  dependsOn?: string[];
  verification?: Verification;
  retries?: number;
  timeoutMs?: number;
  /** Any other step field, by its relay.yaml name. */
  [field: string]: unknown;
}

export interface ErrorHandlingOptions {
  maxRetries?: number;
  retryDelayMs?: number;
  [field: string]: unknown;
}

/** A relay.yaml configuration, with the format's field names. */
export type Config = Record<string, unknown> & {
  name: string;
  agents: Record<string, unknown>[];
  workflows: Record<string, unknown>[];
};

export class Workflow {
  constructor(name: string);
  description(text: string): this;
  pattern(name: string): this;
  maxConcurrency(n: number): this;
  /** `swarm.timeoutMs`. */
  timeout(ms: number): this;
  channel(name: string): this;
  swarm(fields: Record<string, unknown>): this;
  variable(name: string, opts?: { default?: string | number | boolean; description?: string }): this;
  set(key: string, value: unknown): this;
  workflowField(key: string, value: unknown): this;
  onError(strategy: OnError, opts?: ErrorHandlingOptions): this;
  agent(name: string, opts: AgentOptions): this;
  step(name: string, opts?: StepOptions): this;
  toConfig(): Config;
  toYaml(): string;
  run(opts?: RunOptions): Promise<RunResult>;
}

export function workflow(name: string): Workflow;
export function runWorkflow(path: string, opts?: RunWorkflowOptions): Promise<RunResult>;
export function toYaml(config: Record<string, unknown>): string;
export function findBinary(bin?: string): string;

export class AgentRelayError extends Error {
  exitCode: number | null;
  stderr: string;
}
export class AgentRelayNotFound extends AgentRelayError {}
export class WorkflowInvalid extends AgentRelayError {}
