//! The original's HealthCheck component: a liveness answer and a ping that echoes a message.

use std::time::SystemTime;

use axum::Json;
use ignis_socketio::iso_timestamp;
use serde_json::{Map, Value, json};

use super::body::{JsonObject, expected};
use super::error::{ApiError, Issue};

/// `GET {base}/health-check`.
pub(crate) async fn status() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The longest `message` a ping may carry, as in the original's schema.
pub(crate) const PING_MESSAGE_MAX: usize = 255;

/// `POST {base}/health-check/ping` with `{type?: string, message: string (1..=255)}` answers
/// `{type: "PONG", date, message}`.
pub(crate) async fn ping(JsonObject(body): JsonObject) -> Result<Json<Value>, ApiError> {
    let message = validate_ping(&body).map_err(ApiError::validation)?;
    Ok(Json(json!({
        "type": "PONG",
        "date": iso_timestamp(SystemTime::now()),
        "message": message,
    })))
}

fn validate_ping(body: &Map<String, Value>) -> Result<String, Vec<Issue>> {
    let mut issues = Vec::new();
    match body.get("type") {
        None | Some(Value::String(_)) => {}
        Some(other) => issues.push(Issue::new(&["type"], expected("string", other))),
    }
    let message = match body.get("message") {
        None => {
            issues.push(Issue::new(&["message"], "Required"));
            None
        }
        Some(Value::String(m)) if m.is_empty() => {
            issues.push(Issue::new(
                &["message"],
                "String must contain at least 1 character(s)",
            ));
            None
        }
        Some(Value::String(m)) if m.chars().count() > PING_MESSAGE_MAX => {
            issues.push(Issue::new(
                &["message"],
                format!("String must contain at most {PING_MESSAGE_MAX} character(s)"),
            ));
            None
        }
        Some(Value::String(m)) => Some(m.clone()),
        Some(other) => {
            issues.push(Issue::new(&["message"], expected("string", other)));
            None
        }
    };
    match message {
        Some(m) if issues.is_empty() => Ok(m),
        _ => Err(issues),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_bodies() {
        let long = "x".repeat(PING_MESSAGE_MAX + 1);
        let max = "é".repeat(PING_MESSAGE_MAX);
        type Expected<'a> = Result<&'a str, Vec<(&'a str, &'a str)>>;
        let cases: Vec<(Value, Expected)> = vec![
            (json!({"message": "hi"}), Ok("hi")),
            (json!({"type": "PING", "message": "hi"}), Ok("hi")),
            (json!({"message": max}), Ok(max.as_str())),
            (json!({}), Err(vec![("message", "Required")])),
            (
                json!({"message": ""}),
                Err(vec![(
                    "message",
                    "String must contain at least 1 character(s)",
                )]),
            ),
            (
                json!({"message": long}),
                Err(vec![(
                    "message",
                    "String must contain at most 255 character(s)",
                )]),
            ),
            (
                json!({"message": 5}),
                Err(vec![("message", "Expected string, received number")]),
            ),
            (
                json!({"message": null}),
                Err(vec![("message", "Expected string, received null")]),
            ),
            (
                json!({"type": 1, "message": "hi"}),
                Err(vec![("type", "Expected string, received number")]),
            ),
            (
                json!({"type": [], "message": {}}),
                Err(vec![
                    ("type", "Expected string, received array"),
                    ("message", "Expected string, received object"),
                ]),
            ),
        ];
        for (body, want) in cases {
            let Value::Object(map) = body.clone() else {
                unreachable!()
            };
            let got = validate_ping(&map);
            let want = want.map(str::to_string).map_err(|issues| {
                issues
                    .into_iter()
                    .map(|(p, m)| Issue::new(&[p], m))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{body}");
        }
    }
}
