//! Which requests `/.fly/api` forwards. Pure.
//!
//! A pattern is `METHODS /path`, e.g. `GET|POST /v1/apps/{app}/machines/{machine}/lease`.
//! Path segments are literals, `{app}` and `{machine}` (which must equal this VM's AppName and
//! MachineId), `*` (one segment) or a final `**` (any rest). Paths are compared segment by
//! segment as sent, after refusing every spelling that could mean something else to the
//! upstream: encoded `/`, `\`, `.` or `%`, `.` and `..` segments, empty segments (`//`),
//! control characters. So no encoding trick reaches another machine: a segment that is not
//! byte-for-byte this machine's id is another machine's.

/// The default allow-list: Fly's `/.fly/api` subset for this machine.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "POST /v1/tokens/oidc",
    "GET /v1/apps/{app}/machines/{machine}",
    "GET /v1/apps/{app}/machines/{machine}/metadata",
    "POST|DELETE /v1/apps/{app}/machines/{machine}/metadata/*",
    "GET|POST|DELETE /v1/apps/{app}/machines/{machine}/lease",
    "POST /v1/apps/{app}/machines/{machine}/lease/refresh",
    "POST /v1/apps/{app}/machines/{machine}/suspend",
    "GET /v1/apps/{app}/machines/{machine}/wait",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    App,
    Machine,
    Any,
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    methods: Vec<String>,
    segments: Vec<Segment>,
}

/// A pattern that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("path pattern {pattern:?}: {problem}")]
pub struct PatternError {
    pub pattern: String,
    pub problem: &'static str,
}

fn parse_pattern(text: &str) -> Result<Pattern, PatternError> {
    let err = |problem| PatternError {
        pattern: text.to_string(),
        problem,
    };
    let (methods, path) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| err("must be \"METHOD /path\""))?;
    let methods: Vec<String> = methods.split('|').map(|m| m.to_ascii_uppercase()).collect();
    if methods
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(err("methods must be letters, separated by |"));
    }
    let path = path.trim();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(err("the path must start with /"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        segments.push(match *part {
            "" => return Err(err("empty path segment")),
            "{app}" => Segment::App,
            "{machine}" => Segment::Machine,
            "*" => Segment::Any,
            "**" if i + 1 == parts.len() => Segment::Rest,
            "**" => return Err(err("** must be the last segment")),
            lit if lit.contains(['{', '}', '*', '%']) => {
                return Err(err("literal segments may not contain { } * %"))
            }
            lit => Segment::Literal(lit.to_string()),
        });
    }
    Ok(Pattern { methods, segments })
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Forward,
    /// 400: the path is ambiguous or malformed.
    BadRequest(&'static str),
    /// 403: the path names another app or machine.
    Forbidden,
    /// 405: the path is allowed, the method is not.
    MethodNotAllowed,
    /// 404: not on the allow-list.
    NotFound,
}

/// The allow-list, bound to this machine's identity.
#[derive(Debug, Clone)]
pub struct Policy {
    patterns: Vec<Pattern>,
    app: Option<String>,
    machine: Option<String>,
}

/// Checks that a raw request path has one meaning only.
fn check_path(path: &str) -> Result<Vec<&str>, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path must start with /");
    };
    if path.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err("control characters or backslashes in the path");
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .ok_or("truncated percent-encoding")?;
        let value = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("invalid percent-encoding")?;
        if matches!(value, b'/' | b'\\' | b'.' | b'%') || value < 0x20 || value == 0x7f {
            return Err("percent-encoded separator, dot, percent or control character");
        }
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for seg in &segments {
        match *seg {
            "" => return Err("empty path segment (//)"),
            "." | ".." => return Err("dot segment in the path"),
            _ => {}
        }
    }
    Ok(segments)
}

/// How a pattern relates to a path.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    No,
    OtherIdentity,
    Yes,
}

impl Policy {
    /// Builds the policy from patterns (the defaults when `patterns` is empty).
    pub fn new(
        patterns: &[String],
        app: Option<&str>,
        machine: Option<&str>,
    ) -> Result<Self, PatternError> {
        let patterns = if patterns.is_empty() {
            DEFAULT_PATTERNS
                .iter()
                .map(|p| parse_pattern(p))
                .collect::<Result<_, _>>()?
        } else {
            patterns
                .iter()
                .map(|p| parse_pattern(p))
                .collect::<Result<_, _>>()?
        };
        Ok(Policy {
            patterns,
            app: app.filter(|a| !a.is_empty()).map(str::to_string),
            machine: machine.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    fn fit(&self, pattern: &Pattern, segments: &[&str], machine: Option<&str>) -> Fit {
        let mut own = true;
        for (i, seg) in pattern.segments.iter().enumerate() {
            let Some(actual) = segments.get(i) else {
                return Fit::No;
            };
            match seg {
                Segment::Rest => return if own { Fit::Yes } else { Fit::OtherIdentity },
                Segment::Literal(lit) if lit != actual => return Fit::No,
                Segment::Literal(_) | Segment::Any => {}
                Segment::App => own &= self.app.as_deref() == Some(*actual),
                Segment::Machine => own &= machine == Some(*actual),
            }
        }
        match (segments.len() == pattern.segments.len(), own) {
            (false, _) => Fit::No,
            (true, true) => Fit::Yes,
            (true, false) => Fit::OtherIdentity,
        }
    }

    /// Decides on a request. `path` is the raw path, without the query.
    pub fn decide(&self, method: &str, path: &str) -> Decision {
        self.decide_as(method, path, self.machine.as_deref())
    }

    /// [`Policy::decide`] with `{machine}` bound to `machine` (a clone's own id after a
    /// restore; the credentials in use say which).
    pub fn decide_as(&self, method: &str, path: &str, machine: Option<&str>) -> Decision {
        let segments = match check_path(path) {
            Ok(s) => s,
            Err(problem) => return Decision::BadRequest(problem),
        };
        let mut decision = Decision::NotFound;
        for pattern in &self.patterns {
            match self.fit(pattern, &segments, machine) {
                Fit::No => {}
                Fit::OtherIdentity => decision = Decision::Forbidden,
                Fit::Yes if pattern.methods.iter().any(|m| m == method) => {
                    return Decision::Forward
                }
                Fit::Yes if decision == Decision::NotFound => decision = Decision::MethodNotAllowed,
                Fit::Yes => {}
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clones_machine_replaces_the_originals() {
        let p = Policy::new(&[], Some("app1"), Some("m1")).expect("defaults parse");
        assert_eq!(
            p.decide_as("GET", "/v1/apps/app1/machines/m-clone", Some("m-clone")),
            Decision::Forward
        );
        assert_eq!(
            p.decide_as("GET", "/v1/apps/app1/machines/m1", Some("m-clone")),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide("GET", "/v1/apps/app1/machines/m1"),
            Decision::Forward
        );
    }

    use super::*;

    fn policy() -> Policy {
        Policy::new(&[], Some("app1"), Some("m1")).expect("defaults parse")
    }

    #[test]
    fn defaults_forward_own_paths() {
        let p = policy();
        assert_eq!(p.decide("POST", "/v1/tokens/oidc"), Decision::Forward);
        assert_eq!(
            p.decide("GET", "/v1/apps/app1/machines/m1"),
            Decision::Forward
        );
        assert_eq!(
            p.decide("GET", "/v1/apps/app1/machines/m1/metadata"),
            Decision::Forward
        );
        assert_eq!(
            p.decide("POST", "/v1/apps/app1/machines/m1/metadata/role"),
            Decision::Forward
        );
        assert_eq!(
            p.decide("DELETE", "/v1/apps/app1/machines/m1/lease"),
            Decision::Forward
        );
    }

    #[test]
    fn other_machines_and_apps_are_forbidden() {
        let p = policy();
        for path in [
            "/v1/apps/app1/machines/m2/metadata",
            "/v1/apps/app2/machines/m1/metadata",
            "/v1/apps/app1/machines/M1/metadata",
            "/v1/apps/app1/machines/m1x/metadata",
            "/v1/apps/app1/machines/%6D1/metadata",
            "/v1/apps/app1/machines/m1;x/metadata",
        ] {
            assert_eq!(p.decide("GET", path), Decision::Forbidden, "{path}");
        }
    }

    #[test]
    fn encoding_tricks_are_bad_requests() {
        let p = policy();
        for path in [
            "/v1/apps/app1/machines/m1/../m2/metadata",
            "/v1/apps/app1/machines/m1/./metadata",
            "/v1/apps/app1/machines/m1%2F..%2Fm2/metadata",
            "/v1/apps/app1/machines/m1%2f..%2fm2/metadata",
            "/v1/apps/app1/machines/m1/%2e%2e/m2/metadata",
            "/v1/apps/app1/machines/m1%252F/metadata",
            "/v1/apps/app1//machines/m1/metadata",
            "/v1/apps/app1/machines/m1\\..\\m2/metadata",
            "/v1/apps/app1/machines/m1%00/metadata",
            "/v1/apps/app1/machines/m1%",
            "/v1/apps/app1/machines/m1%zz",
            "v1/tokens/oidc",
        ] {
            assert!(
                matches!(p.decide("GET", path), Decision::BadRequest(_)),
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        let p = policy();
        assert_eq!(p.decide("GET", "/v1/apps"), Decision::NotFound);
        assert_eq!(p.decide("GET", "/v1/tokens/oidc/extra"), Decision::NotFound);
        assert_eq!(
            p.decide("GET", "/v1/tokens/oidc"),
            Decision::MethodNotAllowed
        );
        assert_eq!(
            p.decide("DELETE", "/v1/apps/app1/machines/m1"),
            Decision::MethodNotAllowed
        );
        // Methods are case-sensitive (RFC 9110): "get" is not GET.
        assert_eq!(
            p.decide("get", "/v1/tokens/oidc"),
            Decision::MethodNotAllowed
        );
    }

    #[test]
    fn without_identity_no_machine_path_is_own() {
        let p = Policy::new(&[], None, None).expect("defaults");
        assert_eq!(
            p.decide("GET", "/v1/apps/a/machines/m/metadata"),
            Decision::Forbidden
        );
        assert_eq!(p.decide("POST", "/v1/tokens/oidc"), Decision::Forward);
    }

    #[test]
    fn custom_patterns_with_wildcards() {
        let patterns = vec![
            "GET /v1/apps/{app}/machines/{machine}/blob".to_string(),
            "GET|HEAD /v1/apps/{app}/volumes/**".to_string(),
        ];
        let p = Policy::new(&patterns, Some("a"), Some("m")).expect("parse");
        assert_eq!(
            p.decide("GET", "/v1/apps/a/machines/m/blob"),
            Decision::Forward
        );
        assert_eq!(
            p.decide("HEAD", "/v1/apps/a/volumes/v1/x"),
            Decision::Forward
        );
        assert_eq!(
            p.decide("GET", "/v1/apps/b/volumes/v1"),
            Decision::Forbidden
        );
        assert_eq!(p.decide("POST", "/v1/tokens/oidc"), Decision::NotFound);
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "/no/method",
            "GET no-slash",
            "GET /a//b",
            "GET /**/x",
            "G3T /x",
            "GET /a%2f",
        ] {
            assert!(
                Policy::new(&[bad.to_string()], None, None).is_err(),
                "{bad}"
            );
        }
    }
}
