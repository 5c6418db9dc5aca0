//! `AWS_ROLE_SESSION_NAME`: STS requires `[\w+=,.@-]{2,64}`.

const MIN: usize = 2;
const MAX: usize = 64;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Derives a valid role session name from a machine id or host name: disallowed characters
/// become `-`, the result is cut to 64 characters and padded to at least 2. An empty input
/// gives `roost`.
pub fn session_name(source: &str) -> String {
    let mut name: String = source
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX)
        .collect();
    if name.is_empty() {
        name = "roost".to_string();
    }
    while name.len() < MIN {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        (MIN..=MAX).contains(&name.len()) && name.chars().all(allowed)
    }

    #[test]
    fn keeps_valid_names() {
        assert_eq!(session_name("e784079b449483"), "e784079b449483");
        assert_eq!(session_name("app_1+a=b,c.d@e-f"), "app_1+a=b,c.d@e-f");
    }

    #[test]
    fn repairs_invalid_names() {
        assert_eq!(session_name("my host/name"), "my-host-name");
        assert_eq!(session_name("x"), "x-");
        assert_eq!(session_name(""), "roost");
        assert_eq!(session_name("ünïcode"), "-n-code");
        let long = "a".repeat(100);
        assert_eq!(session_name(&long).len(), 64);
        for input in ["", "x", "é", "a b c", &long, "\n\t", "::::"] {
            assert!(valid(&session_name(input)), "{input:?}");
        }
    }
}
