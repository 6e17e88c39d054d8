//! `template.body`: request bodies rendered with minijinja (Jinja2 syntax).
//!
//! In `mode: event` the template sees the event's fields as in its Flipt
//! JSON (`version`, `type`, `action`, `metadata.actor.*`, `payload`,
//! `timestamp`, `status`) plus `id` (`audit.id`) and `source`
//! (`audit.source`); in `mode: batch` it sees `events`, a list of those.
//! Missing fields render empty, however deep (`payload.a.b.c`), since
//! payloads differ from event to event; the `default` filter gives a
//! fallback and `tojson` writes any value as JSON.

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

/// The template's name inside its environment.
const NAME: &str = "body";

/// A compiled body template and the content type it produces.
pub struct BodyTemplate {
    env: Environment<'static>,
    /// When true, every rendered body must parse as JSON.
    json: bool,
}

impl std::fmt::Debug for BodyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyTemplate")
            .field("json", &self.json)
            .finish()
    }
}

impl BodyTemplate {
    /// Compiles `source`; the error names the line and what is wrong.
    pub fn new(source: &str, content_type: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Bodies are not HTML: nothing is escaped unless the template says so.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| describe(&e))?;
        let template = Self {
            env,
            json: is_json(content_type),
        };
        template.check_names()?;
        Ok(template)
    }

    /// Names of filters, tests and functions are resolved when the template
    /// runs: a trial run on a sample event finds a misspelt one at load
    /// rather than at the first event.
    fn check_names(&self) -> Result<(), String> {
        let event = serde_json::json!({
            "version": "0.2", "type": "flag", "action": "created",
            "metadata": {"actor": {"authentication": "none"}},
            "payload": {"key": "sample"}, "timestamp": "2024-05-01T10:00:00Z",
            "status": "success", "id": "sample", "source": "sample",
        });
        let mut context = event.clone();
        context["events"] = serde_json::json!([event]);
        let template = self.env.get_template(NAME).map_err(|e| describe(&e))?;
        match template.render(Value::from_serialize(&context)) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownFilter
                        | ErrorKind::UnknownTest
                        | ErrorKind::UnknownFunction
                        | ErrorKind::UnknownMethod
                ) =>
            {
                Err(describe(&e))
            }
            _ => Ok(()),
        }
    }

    /// Renders the body for `context`. A body that is not JSON when the
    /// content type says JSON is an error, as is any render failure.
    pub fn render(&self, context: &serde_json::Value) -> Result<String, String> {
        let template = self.env.get_template(NAME).map_err(|e| describe(&e))?;
        let body = template
            .render(Value::from_serialize(context))
            .map_err(|e| describe(&e))?;
        if self.json
            && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
        {
            return Err(format!(
                "the rendered body is not valid JSON ({e}), but template.content_type says JSON: \
                 quote values with the `tojson` filter"
            ));
        }
        Ok(body)
    }
}

/// `application/json` or any `…+json` type, parameters aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// A minijinja error as one line: what, and where in the template.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> serde_json::Value {
        json!({
            "version": "0.2", "type": "flag", "action": "created",
            "metadata": {"actor": {"email": "kyle@example.com"}},
            "payload": {"key": "dark \"mode\"", "enabled": true},
            "timestamp": "2024-05-01T10:00:00Z", "status": "success",
            "id": "0190-abc", "source": "flipt",
        })
    }

    #[test]
    fn renders_a_slack_message_with_tojson() {
        let t = BodyTemplate::new(
            r#"{"text": {{ (metadata.actor.email ~ " " ~ action ~ " " ~ type ~ " " ~ payload.key) | tojson }}}"#,
            "application/json",
        )
        .unwrap();
        let body = t.render(&event()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"text": "kyle@example.com created flag dark \"mode\""})
        );
    }

    #[test]
    fn missing_fields_render_empty_at_any_depth() {
        let t = BodyTemplate::new(
            "[{{ payload.a.b.c }}][{{ nope | default('-') }}]",
            "text/plain",
        )
        .unwrap();
        assert_eq!(t.render(&event()).unwrap(), "[][-]");
    }

    #[test]
    fn a_body_that_is_not_json_under_a_json_content_type_is_an_error() {
        let t = BodyTemplate::new(
            r#"{"key": {{ payload.key }}}"#,
            "application/json; charset=utf-8",
        )
        .unwrap();
        let err = t.render(&event()).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(err.contains("tojson"), "{err}");
        let plain = BodyTemplate::new(r#"{"key": {{ payload.key }}}"#, "text/plain").unwrap();
        assert!(plain.render(&event()).is_ok());
        assert!(is_json("application/cloudevents+json"));
        assert!(!is_json("text/json-ish"));
    }

    #[test]
    fn render_failures_are_errors_not_panics() {
        let t = BodyTemplate::new("{{ type + 1 }}", "text/plain").unwrap();
        assert!(t.render(&event()).is_err());
        let t = BodyTemplate::new("{{ payload | nosuchfilter }}", "text/plain");
        assert!(t.is_err());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = BodyTemplate::new("ok\n{% for %}", "text/plain").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn output_is_not_html_escaped() {
        let t = BodyTemplate::new("{{ payload.key }}", "text/plain").unwrap();
        assert_eq!(t.render(&event()).unwrap(), "dark \"mode\"");
    }
}
