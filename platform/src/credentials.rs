//! The VM's credentials: the platform token (the one secret type of roost) and the one place
//! an `Authorization` header is built from it, attenuated per request when asked.

use crate::attenuate::Attenuator;
use http::HeaderValue;
use std::fmt;
use std::time::SystemTime;

/// The platform token (the macaroon). Readable through [`Token::expose`] only; `Debug` prints
/// no part of it. The run config deserialises `Api.Token` straight into it.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why no header could be built. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot attenuate the token: {0}")]
    Attenuate(String),
    #[error("the token does not fit in an HTTP header")]
    Unusable,
}

/// The token, its scheme (`FlyV1`) and, with `Api.Attenuate`, the attenuator.
#[derive(Debug, Clone)]
pub struct Credentials {
    token: Token,
    scheme: String,
    attenuator: Option<Attenuator>,
    /// The machine the token is for: the proxy's allow-list is bound to it.
    machine_id: Option<String>,
}

/// One `Authorization` header and the token in it (for the redaction of answers).
#[derive(Debug)]
pub struct Authorization {
    pub header: HeaderValue,
    /// The token as sent: the attenuated one when attenuating.
    pub sent_token: String,
}

impl Credentials {
    /// Credentials for `token`. With `attenuate`, every request gets a token narrowed to its
    /// method, path, machine and a short expiry; a token that cannot be attenuated is used
    /// unchanged, with one warning.
    pub fn new(token: Token, scheme: &str, attenuate: bool, machine_id: Option<&str>) -> Self {
        let attenuator = if attenuate {
            match Attenuator::new(token.expose(), machine_id.unwrap_or("")) {
                Ok(a) => Some(a),
                Err(err) => {
                    // The error never contains the token.
                    tracing::warn!(
                        "Api.Attenuate is set but the token cannot be attenuated ({err}); it is forwarded unchanged"
                    );
                    None
                }
            }
        } else {
            None
        };
        Credentials {
            token,
            scheme: scheme.to_string(),
            attenuator,
            machine_id: machine_id.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// The machine these credentials are for (a clone's own after a restore).
    pub fn machine_id(&self) -> Option<&str> {
        self.machine_id.as_deref()
    }

    /// The VM's token itself (for the redaction of answers).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The header for one request: `<scheme> <token>`, the token attenuated to `method` and
    /// `path` when attenuating. Marked sensitive, so no HTTP layer logs it.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
    ) -> Result<Authorization, CredentialError> {
        let sent_token = match &self.attenuator {
            Some(a) => a
                .token_for(method, path, SystemTime::now())
                .map_err(|e| CredentialError::Attenuate(e.to_string()))?,
            None => self.token.expose().to_string(),
        };
        let mut header = HeaderValue::from_str(&format!("{} {sent_token}", self.scheme))
            .map_err(|_| CredentialError::Unusable)?;
        header.set_sensitive(true);
        Ok(Authorization { header, sent_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_prints() {
        let t = Token::new("fm2_secret");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let c = Credentials::new(t, "FlyV1", false, None);
        assert!(!format!("{c:?}").contains("fm2_secret"));
    }

    #[test]
    fn the_header_is_scheme_and_token_and_sensitive() {
        let c = Credentials::new(Token::new("fm2_secret"), "FlyV1", false, None);
        let auth = c.authorization("GET", "/v1/apps").expect("header");
        assert_eq!(auth.header.to_str().ok(), Some("FlyV1 fm2_secret"));
        assert!(auth.header.is_sensitive());
        assert_eq!(auth.sent_token, "fm2_secret");
    }

    #[test]
    fn a_token_that_cannot_be_attenuated_is_used_unchanged() {
        let c = Credentials::new(Token::new("not-a-macaroon"), "FlyV1", true, Some("m1"));
        let auth = c.authorization("GET", "/v1/apps").expect("header");
        assert_eq!(auth.sent_token, "not-a-macaroon");
    }
}
