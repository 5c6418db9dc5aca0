//! process-compose's interpolation, done at import. process-compose substitutes `${VAR}` and
//! `$VAR` in the whole file before it reads it, from its own environment and the project's
//! `.env`, and `$$` stands for a `$` the shell gets. At import, the `.env` is known, and what
//! the user gives with `--env NAME=VALUE`; the environment process-compose would have had is
//! the VM's, later, not this host's: a variable the import knows is substituted now, one it
//! does not takes its `${VAR:-default}` if it has one, and any other is left as written (so a
//! `command`, run through the shell, still expands it from the service's own environment) and
//! named in a warning.

use std::collections::BTreeMap;

/// `KEY=VALUE` lines of a `.env` file: `#` comments and blank lines skipped, an `export `
/// prefix allowed, a value in single or double quotes unquoted.
pub(super) fn dotenv(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !is_name(key) {
            continue;
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.insert(key.to_string(), unquoted.to_string());
    }
    vars
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with `$$` as `$`, and `${VAR}` and `$VAR` substituted where `vars` has VAR. Where
/// it does not, `${VAR:-default}` and `${VAR-default}` take their default (`${VAR:=default}`
/// and `${VAR=default}` too), as process-compose's substitution does; any other is left as
/// written and its name added to `unset`.
pub(super) fn expand(
    text: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut std::collections::BTreeSet<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    let inner = &braced[..end];
                    let name_len = inner
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(inner.len());
                    let (name, op) = inner.split_at(name_len);
                    let default = [":-", ":=", "-", "="]
                        .iter()
                        .find_map(|p| op.strip_prefix(p));
                    match (vars.get(name).filter(|_| is_name(name)), default) {
                        (Some(value), _) => out.push_str(value),
                        (None, Some(default)) if is_name(name) => out.push_str(default),
                        (None, _) => {
                            if is_name(name) {
                                unset.insert(name.to_string());
                            }
                            out.push_str("${");
                            out.push_str(inner);
                            out.push('}');
                        }
                    }
                    rest = &braced[end + 1..];
                }
                None => {
                    out.push_str("${");
                    rest = braced;
                }
            }
        } else {
            let len = after
                .char_indices()
                .find(|(i, c)| {
                    !(c.is_ascii_alphanumeric() || *c == '_') || (*i == 0 && c.is_ascii_digit())
                })
                .map_or(after.len(), |(i, _)| i);
            let name = &after[..len];
            match vars.get(name).filter(|_| !name.is_empty()) {
                Some(value) => out.push_str(value),
                None => {
                    if !name.is_empty() {
                        unset.insert(name.to_string());
                    }
                    out.push('$');
                    out.push_str(name);
                }
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_braces_defaults_and_what_is_left_for_the_shell() {
        let vars = dotenv("# db\nexport DB_PORT=5432\nNAME='my app'\nEMPTY=\nbad line\n");
        assert_eq!(vars.get("DB_PORT").map(String::as_str), Some("5432"));
        assert_eq!(vars.get("NAME").map(String::as_str), Some("my app"));
        assert_eq!(vars.get("EMPTY").map(String::as_str), Some(""));
        assert_eq!(vars.len(), 3);
        let mut unset = std::collections::BTreeSet::new();
        assert_eq!(
            expand(
                "pg -p ${DB_PORT} -p $DB_PORT ${DB_PORT:-1} $$HOME $HOME ${UNSET:-x} ${U2-y} ${U3:+z} 5$",
                &vars,
                &mut unset
            ),
            "pg -p 5432 -p 5432 5432 $HOME $HOME x y ${U3:+z} 5$"
        );
        // `$$HOME` is the shell's; a bare `$HOME` is one the import could not set.
        assert_eq!(unset.iter().collect::<Vec<_>>(), ["HOME", "U3"]);
        assert_eq!(expand("a ${unclosed", &vars, &mut unset), "a ${unclosed");
        assert_eq!(expand("$1 $$$DB_PORT", &vars, &mut unset), "$1 $5432");
    }
}
