// A workflow written in TypeScript with the agent-relay SDK.
//
//   agent-relay run examples/sdk-typescript.mts --rehearse
//
// TypeScript runs through `tsx` when it is on PATH (`npm install -g tsx`), else through
// Node's own type stripping (Node.js 22.6 or later); with neither, the binary says so.
import { workflow, type RunEvent, type RunResult } from "agent-relay";

interface Review {
  name: string;
  focus: string;
}

const reviews: Review[] = [
  { name: "security", focus: "injection and secrets" },
  { name: "style", focus: "naming and structure" },
];

const wf = workflow("sdk-typescript")
  .pattern("fan-out")
  .maxConcurrency(2)
  .agent("reviewer", { cli: "codex", role: "reviewer", interactive: false, retries: 1 });

for (const r of reviews) {
  wf.step(`review-${r.name}`, {
    agent: "reviewer",
    task: `Review the change for ${r.focus}. End with REVIEWED.`,
    verification: { type: "output_contains", value: "REVIEWED" },
  });
}

const result: RunResult = await wf.run({
  rehearse: true,
  onEvent: (e: RunEvent) => console.log(e.type),
});
console.log(result.status);
