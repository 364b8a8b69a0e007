// The JavaScript SDK against the real agent-relay binary ($AGENT_RELAY_BIN, else on PATH).
//
//   AGENT_RELAY_BIN=target/debug/agent-relay node --test sdk/typescript/test/
//
// Runs happen in a scratch directory with `--rehearse` or deterministic steps; with
// $AGENT_RELAY_FAKE_BIN (a directory of fake agents) first on PATH when given.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { AgentRelayNotFound, WorkflowInvalid, findBinary, runWorkflow, toYaml, workflow } from "../index.js";

const bin = findBinary();
const env = { AGENT_RELAY_LAUNCHER: process.env.AGENT_RELAY_LAUNCHER || "local" };
if (process.env.AGENT_RELAY_FAKE_BIN) env.PATH = `${process.env.AGENT_RELAY_FAKE_BIN}:${process.env.PATH}`;

function scratch(t) {
  const dir = mkdtempSync(join(tmpdir(), "agent-relay-sdk-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function validate(text, cwd) {
  return spawnSync(bin, ["validate", "-"], { input: text, cwd, encoding: "utf8" });
}

function sample() {
  return workflow("sample")
    .description("A sample of every builder call")
    .pattern("dag")
    .maxConcurrency(2)
    .timeout(120_000)
    .channel("team")
    .variable("who", { default: "world", description: "Who to greet" })
    .agent("dev", { cli: "claude", role: "developer", model: "sonnet", retries: 1, interactive: false })
    .agent("ops", { cli: "codex", interactive: false, cwd: "." })
    .step("hello", { command: "echo hello {{who}}", timeoutMs: 30_000 })
    .step("plan", {
      agent: "dev",
      task: "Plan for {{who}}:\n{{steps.hello.output}}\nEnd with DONE.",
      dependsOn: ["hello"],
      verification: { type: "output_contains", value: "DONE" },
      outputVar: "the_plan",
    })
    .step("ship", { agent: "ops", task: "Ship {{the_plan}}", dependsOn: ["plan"], continueOnFailure: true })
    .onError("retry", { maxRetries: 2, retryDelayMs: 50 });
}

test("the YAML the builder writes validates with the binary", (t) => {
  const out = validate(sample().toYaml(), scratch(t));
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /valid \(1 workflow, 3 steps, 2 agents\)/);
});

test("field names are the format's", () => {
  const c = sample().toConfig();
  assert.deepEqual(c.swarm, { pattern: "dag", maxConcurrency: 2, timeoutMs: 120000, channel: "team" });
  assert.deepEqual(c.errorHandling, { strategy: "retry", maxRetries: 2, retryDelayMs: 50 });
  assert.deepEqual(c.agents[0].constraints, { retries: 1 });
  const steps = c.workflows[0].steps;
  assert.equal(steps[0].type, "deterministic");
  assert.deepEqual(steps[1].dependsOn, ["hello"]);
  assert.equal(steps[1].outputVar, "the_plan");
  assert.deepEqual(c.variables.who, { description: "Who to greet", default: "world" });
});

test("text survives the YAML exactly", async (t) => {
  const dir = scratch(t);
  const wf = workflow("t")
    .step("a", { command: `printf '%s' "x: y # z"` })
    .step("b", { command: "echo one\n  echo two\n\n", dependsOn: ["a"] })
    .step("c", { command: "printf '%s' 'yes\ttab \u00e9 \\ back'" });
  const r = await wf.run({ cwd: dir, env });
  assert.equal(r.status, "completed", r.stderr);
  assert.equal(r.output("a"), "x: y # z");
  assert.equal(r.output("b"), "one\ntwo\n");
  assert.equal(r.output("c"), "yes\ttab \u00e9 \\ back");
});

test("a typo is reported by the binary with the format's name", (t) => {
  const bad = workflow("t").agent("a", { cli: "claude" }).step("s", { agent: "a", task: "x", dependOn: ["y"] });
  const out = validate(bad.toYaml(), scratch(t));
  assert.equal(out.status, 3);
  assert.match(out.stderr, /dependsOn/);
});

test("a run streams events and resolves to outputs", async (t) => {
  const dir = scratch(t);
  const seen = [];
  const r = await sample().run({ vars: { who: "you" }, onEvent: (e) => seen.push(e), rehearse: true, cwd: dir, env });
  assert.equal(r.status, "completed", r.stderr);
  assert.equal(r.ok, true);
  assert.equal(r.exitCode, 0);
  assert.deepEqual(r.steps.map((s) => s.name), ["hello", "plan", "ship"]);
  assert.equal(r.output("hello"), "hello you\n");
  assert.equal(seen[0].type, "run:started");
  assert.equal(seen.at(-1).type, "run:completed");
  assert.ok(seen.some((e) => e.type === "step:completed" && e.step === "plan"));
  assert.deepEqual(seen, r.events);
  assert.ok(existsSync(join(dir, ".agent-relay", "runs", r.runId)));
});

test("a failed run is a result with status failed", async (t) => {
  const wf = workflow("fails").step("bad", { command: "echo broken; exit 7" }).step("after", { command: "echo never", dependsOn: ["bad"] });
  const r = await wf.run({ cwd: scratch(t), env });
  assert.equal(r.status, "failed");
  assert.equal(r.exitCode, 1);
  assert.equal(r.step("bad").exitCode, 7);
  assert.equal(r.step("after").status, "skipped");
});

test("an invalid workflow rejects with the binary's message", async (t) => {
  const wf = workflow("t").step("s", { agent: "nobody", task: "x" });
  await assert.rejects(wf.run({ cwd: scratch(t), env }), (e) => e instanceof WorkflowInvalid && e.exitCode === 3 && /nobody/.test(e.message));
});

test("a missing binary rejects naming it", async (t) => {
  const missing = join(scratch(t), "no-such-agent-relay");
  await assert.rejects(
    workflow("t").step("s", { command: "true" }).run({ bin: missing }),
    (e) => e instanceof AgentRelayNotFound && e.message.includes("no-such-agent-relay") && e.message.includes("AGENT_RELAY_BIN"),
  );
});

test("an onEvent that throws cancels the run and rejects", async (t) => {
  const dir = scratch(t);
  const wf = workflow("slow").step("wait", { command: "sleep 30" });
  const stop = (e) => {
    if (e.type === "step:started") throw new Error("enough");
  };
  await assert.rejects(wf.run({ onEvent: stop, cwd: dir, env }), /enough/);
  const runs = join(dir, ".agent-relay", "runs");
  const [run] = readdirSync(runs);
  const types = readFileSync(join(runs, run, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).type);
  assert.equal(types.at(-1), "run:cancelled");
});

test("runWorkflow runs a file with its workflow and vars", async (t) => {
  const dir = scratch(t);
  const path = join(dir, "two.yaml");
  writeFileSync(
    path,
    toYaml({
      name: "two",
      agents: [],
      workflows: [
        { name: "first", steps: [{ name: "a", type: "deterministic", command: "echo first" }] },
        { name: "second", steps: [{ name: "b", type: "deterministic", command: "echo {{x}}" }] },
      ],
    }),
  );
  const r = await runWorkflow(path, { workflow: "second", vars: { x: 42 }, cwd: dir, env });
  assert.equal(r.workflow, "second");
  assert.equal(r.output("b"), "42\n");
});

test("under the binary, run() hands the workflow over", (t) => {
  const dir = scratch(t);
  writeFileSync(
    join(dir, "wf.mjs"),
    `import { workflow } from "agent-relay";
await workflow("handed").step("a", { command: "echo {{v}}" }).run({ vars: { v: "from-script" } });
console.log("NOT REACHED");
`,
  );
  const out = spawnSync(bin, ["run", "wf.mjs", "--json"], { cwd: dir, encoding: "utf8", env: { ...process.env, ...env } });
  assert.equal(out.status, 0, out.stderr);
  const summary = JSON.parse(out.stdout);
  assert.equal(summary.workflow, "handed");
  assert.equal(summary.steps[0].output, "from-script\n");
  assert.ok(!(out.stdout + out.stderr).includes("NOT REACHED"));
});
