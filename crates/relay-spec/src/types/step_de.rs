//! Reading a step. Written by hand because a step that names a custom step (`use: NAME`)
//! takes that step's parameters as further keys, which a derived reader would reject or,
//! told to accept them, would accept everywhere. Here a key that is no field of a step is
//! a parameter when the step has `use`, and otherwise an error at the key's position
//! naming the closest field, as for every other mapping of the format.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::Scalar;
use super::step::Step;
use crate::diagnostic::{Pos, located};
use crate::suggest::unknown_name_message;

/// Every key a step may have, as written.
pub const STEP_FIELDS: &[&str] = &[
    "name",
    "type",
    "use",
    "agent",
    "task",
    "command",
    "captureOutput",
    "failOnError",
    "dependsOn",
    "verification",
    "retries",
    "timeoutMs",
    "cwd",
    "workdir",
    "description",
    "items",
    "maxIterations",
    "participants",
    "rounds",
    "compensate",
    "phase",
    "escalateTo",
    "humanAssistance",
    "branch",
    "baseBranch",
    "createBranch",
    "path",
    "waitFor",
    "integration",
    "action",
    "params",
    "if",
    "skipIf",
    "continueOnFailure",
    "outputVar",
    "loop",
    "until",
    "breakIf",
    "approval",
    "permissions",
    "workflow",
    "workflowName",
    "session",
    "steps",
    "resultFrom",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        d.deserialize_map(StepVisitor)
    }
}

struct StepVisitor;

/// A key that is no field of a step, kept until the whole mapping shows whether the step
/// has `use`.
struct Extra {
    key: String,
    pos: Option<Pos>,
    value: serde_json::Value,
}

fn scalar(v: serde_json::Value) -> Option<Scalar> {
    match v {
        serde_json::Value::String(s) => Some(Scalar::Text(s)),
        serde_json::Value::Bool(b) => Some(Scalar::Bool(b)),
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        _ => None,
    }
}

fn at<E: de::Error>(pos: Option<Pos>, message: String) -> E {
    match pos {
        Some(p) => E::custom(located(p, message)),
        None => E::custom(message),
    }
}

impl<'de> Visitor<'de> for StepVisitor {
    type Value = Step;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a step: a mapping with at least `name`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
        let mut s = Step::default();
        let mut name: Option<String> = None;
        let mut extras: Vec<Extra> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let pos = Pos::from_location(&key.referenced);
            match key.value.as_str() {
                "name" => name = Some(map.next_value()?),
                "type" => s.step_type = map.next_value()?,
                "use" => s.use_ = map.next_value()?,
                "agent" => s.agent = map.next_value()?,
                "task" => s.task = map.next_value()?,
                "command" => s.command = map.next_value()?,
                "captureOutput" => s.capture_output = map.next_value()?,
                "failOnError" => s.fail_on_error = map.next_value()?,
                "dependsOn" => s.depends_on = map.next_value()?,
                "verification" => s.verification = map.next_value()?,
                "retries" => s.retries = map.next_value()?,
                "timeoutMs" => s.timeout_ms = map.next_value()?,
                "cwd" => s.cwd = map.next_value()?,
                "workdir" => s.workdir = map.next_value()?,
                "description" => s.description = map.next_value()?,
                "items" => s.items = map.next_value()?,
                "maxIterations" => s.max_iterations = map.next_value()?,
                "participants" => s.participants = map.next_value()?,
                "rounds" => s.rounds = map.next_value()?,
                "compensate" => s.compensate = map.next_value()?,
                "phase" => s.phase = map.next_value()?,
                "escalateTo" => s.escalate_to = map.next_value()?,
                "humanAssistance" => s.human_assistance = map.next_value()?,
                "branch" => s.branch = map.next_value()?,
                "baseBranch" => s.base_branch = map.next_value()?,
                "createBranch" => s.create_branch = map.next_value()?,
                "path" => s.path = map.next_value()?,
                "waitFor" => s.wait_for = map.next_value()?,
                "integration" => s.integration = map.next_value()?,
                "action" => s.action = map.next_value()?,
                "params" => s.params = map.next_value()?,
                "if" => s.if_ = map.next_value()?,
                "skipIf" | "skip_if" => s.skip_if = map.next_value()?,
                "continueOnFailure" | "continue_on_failure" => {
                    s.continue_on_failure = map.next_value()?
                }
                "outputVar" | "output_var" => s.output_var = map.next_value()?,
                "loop" => s.loop_ = map.next_value()?,
                "until" => s.until = map.next_value()?,
                "breakIf" | "break_if" => s.break_if = map.next_value()?,
                "approval" => s.approval = map.next_value()?,
                "permissions" => s.permissions = map.next_value()?,
                "workflow" => s.workflow = map.next_value()?,
                "workflowName" | "workflow_name" => s.workflow_name = map.next_value()?,
                "session" => s.session = map.next_value()?,
                "steps" => s.steps = map.next_value()?,
                "resultFrom" | "result_from" => s.result_from = map.next_value()?,
                _ => extras.push(Extra {
                    key: key.value,
                    pos,
                    value: map.next_value()?,
                }),
            }
        }
        s.name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        if s.use_.is_none() {
            if let Some(e) = extras.into_iter().next() {
                return Err(at(
                    e.pos,
                    unknown_name_message("field", &e.key, STEP_FIELDS),
                ));
            }
            return Ok(s);
        }
        for e in extras {
            let Some(v) = scalar(e.value) else {
                return Err(at(
                    e.pos,
                    format!(
                        "parameter `{}` of step `{}` must be a single value (text, a number \
                         or true/false)",
                        e.key, s.name
                    ),
                ));
            };
            s.use_args.insert(e.key, v);
        }
        Ok(s)
    }
}
