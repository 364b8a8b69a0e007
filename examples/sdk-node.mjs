// A workflow written in JavaScript with the agent-relay SDK.
//
//   agent-relay run examples/sdk-node.mjs --rehearse     # the binary runs it
//   node examples/sdk-node.mjs                           # the SDK runs the binary
//
// Under `agent-relay run`, `.run()` hands the workflow to the binary, which runs it as a
// relay.yaml; run with node (`npm install ./sdk/typescript`), it starts
// `agent-relay run -` itself and resolves to the result.
import { workflow } from "agent-relay";

const services = ["api", "worker"];

const wf = workflow("sdk-node")
  .description("Build each service, then summarise")
  .pattern("dag")
  .maxConcurrency(2)
  .agent("writer", { cli: "claude", role: "writer", interactive: false });

for (const s of services) {
  wf.step(`build-${s}`, { command: `echo built ${s}` });
}
wf.step("summary", {
  agent: "writer",
  task: "Summarise:\n" + services.map((s) => `{{steps.build-${s}.output}}`).join("\n"),
  dependsOn: services.map((s) => `build-${s}`),
  verification: { type: "exit_code", value: 0 },
}).onError("fail");

const result = await wf.run({
  rehearse: true,
  onEvent: (e) => console.log(e.type, e.step ?? ""),
});
console.log(result.status, result.steps.map((s) => `${s.name}=${s.status}`).join(" "));
