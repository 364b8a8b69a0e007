"""The Python SDK against the real agent-relay binary ($AGENT_RELAY_BIN, else on PATH).

    AGENT_RELAY_BIN=target/debug/agent-relay python3 -m unittest discover -s sdk/python/tests

Runs happen in a scratch directory with `--rehearse`, or with the fake agents when
$AGENT_RELAY_FAKE_BIN names a directory of them (the Rust suite passes it).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import agent_relay  # noqa: E402
from agent_relay import (  # noqa: E402
    AgentRelayNotFound,
    WorkflowInvalid,
    find_binary,
    run_yaml,
    to_yaml,
    workflow,
)


def sample():
    return (
        workflow("sample")
        .description("A sample of every builder call")
        .pattern("dag")
        .max_concurrency(2)
        .timeout(120_000)
        .channel("team")
        .variable("who", default="world", description="Who to greet")
        .agent("dev", cli="claude", role="developer", model="sonnet", retries=1, interactive=False)
        .agent("ops", cli="codex", interactive=False, timeout_ms=None, cwd=".")
        .step("hello", command="echo hello {{who}}", timeout_ms=30_000)
        .step(
            "plan",
            agent="dev",
            task="Plan for {{who}}:\n{{steps.hello.output}}\nEnd with DONE.",
            depends_on=["hello"],
            verification={"type": "output_contains", "value": "DONE"},
            output_var="the_plan",
        )
        .step("ship", agent="ops", task="Ship {{the_plan}}", depends_on=["plan"], continue_on_failure=True, if_="steps.plan.status == 'completed'")
        .on_error("retry", max_retries=2, retry_delay_ms=50)
    )


class Scratch(unittest.TestCase):
    def setUp(self):
        self.bin = find_binary()
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.env = {"AGENT_RELAY_LAUNCHER": os.environ.get("AGENT_RELAY_LAUNCHER", "local")}
        fake = os.environ.get("AGENT_RELAY_FAKE_BIN")
        if fake:
            self.env["PATH"] = fake + os.pathsep + os.environ.get("PATH", "")

    def tearDown(self):
        self.tmp.cleanup()

    def validate(self, text):
        return subprocess.run(
            [self.bin, "validate", "-"], input=text, capture_output=True, text=True, cwd=self.dir
        )


class BuilderTest(Scratch):
    def test_the_yaml_validates_with_the_binary(self):
        out = self.validate(sample().to_yaml())
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("valid (1 workflow, 3 steps, 2 agents)", out.stdout)

    def test_field_names_are_the_formats(self):
        c = sample().to_config()
        self.assertEqual(c["swarm"], {"pattern": "dag", "maxConcurrency": 2, "timeoutMs": 120000, "channel": "team"})
        self.assertEqual(c["errorHandling"], {"strategy": "retry", "maxRetries": 2, "retryDelayMs": 50})
        self.assertEqual(c["agents"][0]["constraints"], {"retries": 1})
        steps = c["workflows"][0]["steps"]
        self.assertEqual(steps[0]["type"], "deterministic")
        self.assertEqual(steps[0]["timeoutMs"], 30000)
        self.assertEqual(steps[1]["dependsOn"], ["hello"])
        self.assertEqual(steps[1]["outputVar"], "the_plan")
        self.assertEqual(steps[2]["continueOnFailure"], True)
        self.assertIn("if", steps[2])
        self.assertEqual(c["variables"]["who"], {"description": "Who to greet", "default": "world"})

    def test_text_survives_the_yaml_exactly(self):
        # Quotes, `#`, `: `, blank and indented lines, tabs, backslashes, non-ASCII.
        tricky = {
            "name": "t",
            "agents": [],
            "workflows": [
                {
                    "name": "main",
                    "steps": [
                        {"name": "a", "type": "deterministic", "command": "printf '%s' \"x: y # z\""},
                        {"name": "b", "type": "deterministic", "command": "echo one\n  echo two\n\n", "dependsOn": ["a"]},
                        {"name": "c", "type": "deterministic", "command": "printf '%s' 'yes\ttab \u00e9 \\ back'"},
                    ],
                }
            ],
        }
        result = subprocess.run(
            [self.bin, "run", "-", "--json"], input=to_yaml(tricky), capture_output=True, text=True, cwd=self.dir, env={**os.environ, **self.env}
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        steps = {s["name"]: s["output"] for s in json.loads(result.stdout)["steps"]}
        self.assertEqual(steps["a"], 'x: y # z')
        self.assertEqual(steps["b"], "one\ntwo\n")
        self.assertEqual(steps["c"], "yes\ttab \u00e9 \\ back")

    def test_a_typo_is_reported_by_the_binary_with_the_formats_name(self):
        bad = workflow("t").agent("a", cli="claude").step("s", agent="a", task="x", depend_on=["y"])
        out = self.validate(bad.to_yaml())
        self.assertEqual(out.returncode, 3)
        self.assertIn("dependOn", out.stderr)
        self.assertIn("dependsOn", out.stderr)


class RunTest(Scratch):
    def test_a_run_streams_events_and_returns_outputs(self):
        seen = []
        result = sample().run(vars={"who": "you"}, on_event=seen.append, rehearse=True, cwd=self.dir, env=self.env)
        self.assertEqual(result.status, "completed", result.stderr)
        self.assertTrue(result.ok)
        self.assertEqual(result.exit_code, 0)
        self.assertEqual([s.name for s in result.steps], ["hello", "plan", "ship"])
        self.assertEqual(result.output("hello"), "hello you\n")
        self.assertTrue(all(s.duration_ms >= 0 and s.attempts == 1 for s in result.steps))
        types = [e["type"] for e in seen]
        self.assertEqual(types[0], "run:started")
        self.assertEqual(types[-1], "run:completed")
        self.assertIn("step:completed", types)
        self.assertEqual(seen, result.events)
        self.assertTrue(result.run_id)
        self.assertTrue(os.path.isdir(os.path.join(self.dir, ".agent-relay", "runs", result.run_id)))

    def test_a_failed_run_is_a_result_with_status_failed(self):
        wf = (
            workflow("fails")
            .step("bad", command="echo broken; exit 7")
            .step("after", command="echo never", depends_on=["bad"])
        )
        result = wf.run(cwd=self.dir, env=self.env)
        self.assertEqual(result.status, "failed")
        self.assertEqual(result.exit_code, 1)
        self.assertEqual(result.step("bad").status, "failed")
        self.assertEqual(result.step("bad").exit_code, 7)
        self.assertEqual(result.step("after").status, "skipped")

    def test_an_invalid_workflow_raises_with_the_binarys_message(self):
        wf = workflow("t").step("s", agent="nobody", task="x")
        with self.assertRaises(WorkflowInvalid) as cm:
            wf.run(cwd=self.dir, env=self.env)
        self.assertEqual(cm.exception.exit_code, 3)
        self.assertIn("nobody", str(cm.exception))

    def test_a_missing_binary_raises_naming_it(self):
        with self.assertRaises(AgentRelayNotFound) as cm:
            workflow("t").step("s", command="true").run(bin=os.path.join(self.dir, "no-such-agent-relay"))
        self.assertIn("no-such-agent-relay", str(cm.exception))
        self.assertIn("AGENT_RELAY_BIN", str(cm.exception))

    def test_an_on_event_that_raises_cancels_the_run_and_raises(self):
        wf = workflow("slow").step("wait", command="sleep 30")

        def stop(event):
            if event["type"] == "step:started":
                raise RuntimeError("enough")

        with self.assertRaises(RuntimeError):
            wf.run(on_event=stop, cwd=self.dir, env=self.env)
        runs = os.path.join(self.dir, ".agent-relay", "runs")
        (run,) = os.listdir(runs)
        with open(os.path.join(runs, run, "events.jsonl")) as f:
            types = [json.loads(l)["type"] for l in f if l.strip()]
        self.assertEqual(types[-1], "run:cancelled", types)

    def test_run_yaml_runs_a_file_with_its_workflow_and_vars(self):
        path = os.path.join(self.dir, "two.yaml")
        with open(path, "w") as f:
            f.write(
                to_yaml(
                    {
                        "name": "two",
                        "agents": [],
                        "workflows": [
                            {"name": "first", "steps": [{"name": "a", "type": "deterministic", "command": "echo first"}]},
                            {"name": "second", "steps": [{"name": "b", "type": "deterministic", "command": "echo {{x}}"}]},
                        ],
                    }
                )
            )
        result = run_yaml(path, workflow="second", vars={"x": 42}, cwd=self.dir, env=self.env)
        self.assertEqual(result.workflow, "second")
        self.assertEqual(result.output("b"), "42\n")

    def test_under_the_binary_run_hands_the_workflow_over(self):
        script = os.path.join(self.dir, "wf.py")
        with open(script, "w") as f:
            f.write(
                "from agent_relay import workflow\n"
                "r = workflow('handed').step('a', command='echo {{v}}').run(vars={'v': 'from-script'})\n"
                "print('NOT REACHED')\n"
            )
        out = subprocess.run(
            [self.bin, "run", "wf.py", "--json"],
            capture_output=True,
            text=True,
            cwd=self.dir,
            env={**os.environ, **self.env},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        summary = json.loads(out.stdout)
        self.assertEqual(summary["workflow"], "handed")
        self.assertEqual(summary["steps"][0]["output"], "from-script\n")
        self.assertNotIn("NOT REACHED", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
