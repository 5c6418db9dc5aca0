//! process-compose's Go templates, rendered at import. process-compose renders a process's
//! `command`, `working_dir`, `description`, `environment` entries and probe fields as Go
//! `text/template`s, with the project's `vars` under the process's own and
//! `PC_REPLICA_NUM`. It does so for every process, with or without `vars` (the replica number
//! is always there), so `{{` in a command is always a template: a literal one is written
//! `{{ "{{" }}`. `is_template_disabled: true` leaves the `command` as written. Named
//! templates (`define`, `template`, `block`) are refused: one can call itself, and gtmpl has
//! no depth bound. The rendering
//! is gtmpl's, a Rust implementation of Go's `text/template` (`or`, `and`, `if`, `printf`,
//! pipelines), so `{{.MISSING}}` is `<no value>`, as Go prints it.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Renders `process`'s templated fields in place, with `vars` (the project's) under its own
/// `vars` and its replica number; `at` names the process for errors.
pub(super) fn render_process(
    at: &str,
    process: &mut Value,
    project_vars: &Map<String, Value>,
    replica: u64,
) -> Result<(), String> {
    let Some(p) = process.as_object_mut() else {
        return Ok(());
    };
    let mut vars: HashMap<String, gtmpl::Value> = project_vars
        .iter()
        .map(|(k, v)| (k.clone(), to_template_value(v)))
        .collect();
    match p.remove("vars") {
        None | Some(Value::Null) => {}
        Some(Value::Object(own)) => {
            vars.extend(own.iter().map(|(k, v)| (k.clone(), to_template_value(v))));
        }
        Some(_) => return Err(format!("{at}.vars: a mapping of name to value")),
    }
    vars.insert("PC_REPLICA_NUM".into(), gtmpl::Value::from(replica));
    let data = gtmpl::Value::Map(vars);
    let command_rendered = p.remove("is_template_disabled").and_then(|v| v.as_bool()) != Some(true);
    for key in ["command", "working_dir", "description"] {
        if key == "command" && !command_rendered {
            continue;
        }
        render_field(&format!("{at}.{key}"), p.get_mut(key), &data)?;
    }
    if let Some(Value::Array(env)) = p.get_mut("environment") {
        for entry in env.iter_mut() {
            render_field(&format!("{at}.environment"), Some(entry), &data)?;
        }
    }
    for probe in ["readiness_probe", "liveness_probe"] {
        let Some(Value::Object(probe_map)) = p.get_mut(probe) else {
            continue;
        };
        if let Some(Value::Object(exec)) = probe_map.get_mut("exec") {
            render_field(
                &format!("{at}.{probe}.exec.command"),
                exec.get_mut("command"),
                &data,
            )?;
        } else if let Some(Value::Object(http)) = probe_map.get_mut("http_get") {
            for key in ["path", "host", "scheme", "port"] {
                render_field(
                    &format!("{at}.{probe}.http_get.{key}"),
                    http.get_mut(key),
                    &data,
                )?;
            }
        }
    }
    Ok(())
}

/// A string field rendered in place; any other value (a number port) is left as it is.
fn render_field(at: &str, field: Option<&mut Value>, data: &gtmpl::Value) -> Result<(), String> {
    let Some(Value::String(text)) = field else {
        return Ok(());
    };
    if !text.contains("{{") {
        return Ok(());
    }
    if let Some(keyword) = named_template_action(text) {
        // A named template can call itself, and gtmpl has no depth bound (Go's is 100,000):
        // the import would overflow its stack. One field of a process needs none.
        return Err(format!(
            "{at}: `{keyword}` (a named template) is not rendered at import; write the text out"
        ));
    }
    let mut template = gtmpl::Template::default();
    template
        .parse(text.as_str())
        .map_err(|e| format!("{at}: not a Go template: {e}"))?;
    let rendered = template
        .render(&gtmpl::Context::from(data.clone()))
        .map_err(|e| format!("{at}: the template failed: {e}"))?;
    *text = rendered;
    Ok(())
}

/// The first `define`, `template` or `block` action of `text`, if any.
fn named_template_action(text: &str) -> Option<&'static str> {
    text.split("{{").skip(1).find_map(|action| {
        let action = action.trim_start_matches('-').trim_start();
        ["define", "template", "block"].into_iter().find(|keyword| {
            action
                .strip_prefix(keyword)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace() || c == '"'))
        })
    })
}

/// A YAML value as the template sees it: what Go's YAML decoder makes of it.
fn to_template_value(v: &Value) -> gtmpl::Value {
    match v {
        Value::Null => gtmpl::Value::Nil,
        Value::Bool(b) => gtmpl::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => gtmpl::Value::from(i),
            (None, Some(u), _) => gtmpl::Value::from(u),
            (None, None, Some(f)) => gtmpl::Value::from(f),
            (None, None, None) => gtmpl::Value::Nil,
        },
        Value::String(s) => gtmpl::Value::from(s.as_str()),
        Value::Array(items) => gtmpl::Value::Array(items.iter().map(to_template_value).collect()),
        Value::Object(map) => gtmpl::Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), to_template_value(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_fields_process_compose_renders_with_project_and_process_vars() {
        // process-compose's own override file's template process, and its nginx probes.
        let project =
            vars(json!({"HI": "Cool Dude", "LOCATION": "Europe", "PWD": "/tmp", "PORT": 80}));
        let mut p = json!({
            "vars": {"LOCATION": "USA", "FTR_A_ENABLED": true, "FTR_B_ENABLED": true},
            "command": "echo 'Hi {{or .HI 123 }} from {{.LOCATION}} version {{or \"v0.75.0\" .VERSION}} {{if and .FTR_A_ENABLED .FTR_B_ENABLED}}Not Supported{{end}}'",
            "working_dir": "{{ .PWD }}",
            "environment": ["N={{.PC_REPLICA_NUM}}", "PLAIN=x"],
            "liveness_probe": {"exec": {"command": "[ $(docker inspect -f {{ \"{{.State.Running}}\" }} nginx) = true ]"}},
            "readiness_probe": {"http_get": {"host": "127.0.0.1", "port": "{{.PORT}}", "path": "/{{.MISSING}}"}}
        });
        render_process("processes.t", &mut p, &project, 2).expect("render");
        assert_eq!(
            p["command"],
            "echo 'Hi Cool Dude from USA version v0.75.0 Not Supported'"
        );
        assert_eq!(p["working_dir"], "/tmp");
        assert_eq!(p["environment"], json!(["N=2", "PLAIN=x"]));
        assert_eq!(
            p["liveness_probe"]["exec"]["command"],
            "[ $(docker inspect -f {{.State.Running}} nginx) = true ]"
        );
        assert_eq!(p["readiness_probe"]["http_get"]["port"], "80");
        // Go prints a key the data does not have as `<no value>`.
        assert_eq!(p["readiness_probe"]["http_get"]["path"], "/<no value>");
        assert!(p.get("vars").is_none());
    }

    #[test]
    fn a_disabled_command_stays_as_written_and_a_broken_template_names_its_field() {
        let mut p = json!({"command": "echo {{.X}}", "is_template_disabled": true, "working_dir": "{{.X}}"});
        render_process("processes.a", &mut p, &vars(json!({"X": "y"})), 0).expect("render");
        assert_eq!(p["command"], "echo {{.X}}");
        assert_eq!(p["working_dir"], "y");
        let mut bad = json!({"command": "echo {{ .X"});
        let err = render_process("processes.b", &mut bad, &Map::new(), 0).expect_err("refused");
        assert!(
            err.starts_with("processes.b.command: not a Go template"),
            "{err}"
        );
    }
}
