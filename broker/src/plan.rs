//! Which identity tokens the workload gets, where they go and what is exported, decided from
//! the workload's environment and the `Oidc` config. Pure.
//!
//! - AWS, when `AWS_ROLE_ARN` is set: audience `sts.amazonaws.com` (or `AWS_OIDC_AUDIENCE`),
//!   file `TokenPath`, exports `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME` (unless
//!   set) and the missing one of `AWS_REGION` / `AWS_DEFAULT_REGION`.
//! - GCP, when `GOOGLE_WORKLOAD_IDENTITY_PROVIDER` is set (the provider's resource name,
//!   `projects/N/locations/global/workloadIdentityPools/P/providers/X`): audience
//!   `https://iam.googleapis.com/<resource>` (or `GOOGLE_OIDC_AUDIENCE`), file
//!   `gcp_oidc_token` next to TokenPath, and an `external_account` credentials file
//!   `gcp_credentials.json` exported as `GOOGLE_APPLICATION_CREDENTIALS` (service-account
//!   impersonation when `GOOGLE_SERVICE_ACCOUNT_EMAIL` is set).
//! - Azure, when `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` are set: audience
//!   `api://AzureADTokenExchange`, file `azure_oidc_token`, exports
//!   `AZURE_FEDERATED_TOKEN_FILE` (and `AZURE_AUTHORITY_HOST` passes through when given).

use crate::session_name::session_name;
use std::path::{Path, PathBuf};

/// The default token path (Fly's).
pub const DEFAULT_TOKEN_PATH: &str = "/.fly/oidc_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gcp,
    Azure,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }

    /// How long the token file must stay valid beyond any read, for this cloud's SDKs.
    ///
    /// - AWS (boto3, the CLI, the Go, Node, Rust and Java SDKs) and GCP (google-auth) read the
    ///   file when they exchange it, right before the exchange: a token valid for a minute
    ///   more is enough.
    /// - Azure (azure-identity's `WorkloadIdentityCredential`) caches the file's content for
    ///   10 minutes and sends the cached assertion for every new scope in that time: the token
    ///   must stay valid for 10 minutes after any read, plus a minute of margin.
    pub fn min_validity(self) -> std::time::Duration {
        match self {
            Cloud::Aws | Cloud::Gcp => std::time::Duration::from_secs(60),
            Cloud::Azure => std::time::Duration::from_secs(11 * 60),
        }
    }
}

/// One token to keep fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPlan {
    pub cloud: Cloud,
    pub audience: String,
    pub path: PathBuf,
}

/// Everything the broker will do for a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub tokens: Vec<TokenPlan>,
    /// Extra files written once (GCP's credentials): (path, content).
    pub files: Vec<(PathBuf, String)>,
    /// Variables to set in the workload's environment (they replace existing ones).
    pub env: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Inputs besides the environment.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub token_path: &'a Path,
    pub machine_id: Option<&'a str>,
    pub hostname: Option<&'a str>,
    /// The AWS shared files of [`aws_shared_files`] as the caller read them: (path, text).
    pub aws_files: &'a [(PathBuf, String)],
}

/// The AWS shared credentials and config files the workload's SDKs would read:
/// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`, else `~/.aws/credentials` and
/// `~/.aws/config` under the workload's `HOME`.
pub fn aws_shared_files(env: &[(String, String)]) -> Vec<PathBuf> {
    let home = get(env, "HOME").map(PathBuf::from);
    let pick = |var: &str, name: &str| {
        get(env, var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    [
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        pick("AWS_CONFIG_FILE", "config"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether an AWS ini file has a default profile with a setting in it (`[default]`, or
/// `[profile default]` in the config file).
fn has_default_profile(text: &str) -> bool {
    let mut in_default = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            let name = line.trim_start_matches('[').trim_end_matches(']').trim();
            in_default = name == "default" || name == "profile default";
        } else if in_default
            && line.contains('=')
            && !line.starts_with('#')
            && !line.starts_with(';')
        {
            return true;
        }
    }
    false
}

fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Static credentials that would make some SDKs ignore web identity.
const STATIC_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The clouds whose identity tokens `env` asks for, in `plan`'s order: the one statement of
/// the triggers, which `plan` follows and the init reads to know who gets a broker.
pub fn clouds_asked(env: &[(String, String)]) -> Vec<Cloud> {
    let mut clouds = Vec::new();
    if get(env, "AWS_ROLE_ARN").is_some() {
        clouds.push(Cloud::Aws);
    }
    if get(env, "GOOGLE_WORKLOAD_IDENTITY_PROVIDER").is_some() {
        clouds.push(Cloud::Gcp);
    }
    if get(env, "AZURE_CLIENT_ID").is_some() && get(env, "AZURE_TENANT_ID").is_some() {
        clouds.push(Cloud::Azure);
    }
    clouds
}

pub fn plan(env: &[(String, String)], input: &PlanInput<'_>) -> Plan {
    let mut p = Plan::default();
    let asked = clouds_asked(env);
    let dir = input
        .token_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));

    if asked.contains(&Cloud::Aws) {
        let path = input.token_path.to_path_buf();
        p.tokens.push(TokenPlan {
            cloud: Cloud::Aws,
            audience: get(env, "AWS_OIDC_AUDIENCE")
                .unwrap_or("sts.amazonaws.com")
                .to_string(),
            path: path.clone(),
        });
        p.env.push((
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            path.display().to_string(),
        ));
        if get(env, "AWS_ROLE_SESSION_NAME").is_none() {
            let source = input.machine_id.or(input.hostname).unwrap_or("");
            p.env
                .push(("AWS_ROLE_SESSION_NAME".into(), session_name(source)));
        }
        match (get(env, "AWS_REGION"), get(env, "AWS_DEFAULT_REGION")) {
            (Some(r), None) => p.env.push(("AWS_DEFAULT_REGION".into(), r.into())),
            (None, Some(r)) => p.env.push(("AWS_REGION".into(), r.into())),
            _ => {}
        }
        for key in STATIC_KEYS.iter().filter(|k| get(env, k).is_some()) {
            p.warnings.push(format!(
                "{key} is set: some AWS SDKs prefer static keys over AWS_ROLE_ARN's web identity"
            ));
        }
        // The Node and Rust SDKs try the shared profile before web identity (boto3, the CLI
        // and Go do not): a default profile or AWS_PROFILE silently wins there.
        if let Some(profile) = get(env, "AWS_PROFILE") {
            p.warnings.push(format!(
                "AWS_PROFILE={profile} is set: the AWS Node and Rust SDKs use that profile instead of AWS_ROLE_ARN's web identity"
            ));
        }
        for (path, text) in input.aws_files {
            if has_default_profile(text) {
                p.warnings.push(format!(
                    "{} has a default profile: the AWS Node and Rust SDKs use it instead of AWS_ROLE_ARN's web identity",
                    path.display()
                ));
            }
        }
    }

    if let (true, Some(provider)) = (
        asked.contains(&Cloud::Gcp),
        get(env, "GOOGLE_WORKLOAD_IDENTITY_PROVIDER"),
    ) {
        let resource = provider
            .trim_start_matches("https:")
            .trim_start_matches("//iam.googleapis.com/")
            .trim_start_matches('/');
        let token_path = dir.join("gcp_oidc_token");
        let creds_path = dir.join("gcp_credentials.json");
        p.tokens.push(TokenPlan {
            cloud: Cloud::Gcp,
            audience: get(env, "GOOGLE_OIDC_AUDIENCE")
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://iam.googleapis.com/{resource}")),
            path: token_path.clone(),
        });
        let mut creds = serde_json::json!({
            "type": "external_account",
            "audience": format!("//iam.googleapis.com/{resource}"),
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {
                "file": token_path.display().to_string(),
                "format": { "type": "text" },
            },
        });
        if let Some(email) = get(env, "GOOGLE_SERVICE_ACCOUNT_EMAIL") {
            creds["service_account_impersonation_url"] = format!(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
            )
            .into();
        }
        if get(env, "GOOGLE_APPLICATION_CREDENTIALS").is_some() {
            p.warnings.push(
                "GOOGLE_APPLICATION_CREDENTIALS is already set: keeping it; roost's credentials file is written but not exported".into(),
            );
        } else {
            p.env.push((
                "GOOGLE_APPLICATION_CREDENTIALS".into(),
                creds_path.display().to_string(),
            ));
        }
        p.files.push((creds_path, creds.to_string()));
    }

    if asked.contains(&Cloud::Azure) {
        let path = dir.join("azure_oidc_token");
        p.tokens.push(TokenPlan {
            cloud: Cloud::Azure,
            audience: "api://AzureADTokenExchange".into(),
            path: path.clone(),
        });
        p.env.push((
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            path.display().to_string(),
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The triggers, stated once: Azure needs its tenant too, empty values ask for nothing,
    /// and `plan` plans a token for exactly the clouds asked.
    #[test]
    fn clouds_asked_are_the_clouds_planned() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [Cloud]);
        let cases: [Case<'_>; 5] = [
            (&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")], &[Cloud::Aws]),
            (&[("AWS_ROLE_ARN", "")], &[]),
            (&[("AZURE_CLIENT_ID", "c")], &[]),
            (
                &[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")],
                &[Cloud::Azure],
            ),
            (
                &[
                    (
                        "GOOGLE_WORKLOAD_IDENTITY_PROVIDER",
                        "projects/1/locations/global/workloadIdentityPools/p/providers/q",
                    ),
                    ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ],
                &[Cloud::Aws, Cloud::Gcp],
            ),
        ];
        for (vars, want) in cases {
            let e = env(vars);
            assert_eq!(clouds_asked(&e), want, "{vars:?}");
            let planned: Vec<Cloud> = plan(&e, &input()).tokens.iter().map(|t| t.cloud).collect();
            assert_eq!(planned, want, "{vars:?}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn input() -> PlanInput<'static> {
        PlanInput {
            token_path: Path::new("/.fly/oidc_token"),
            machine_id: Some("e2865d0f9e3d87"),
            hostname: Some("host"),
            aws_files: &[],
        }
    }

    #[test]
    fn a_shared_profile_that_would_win_over_web_identity_is_warned_about() {
        let role = ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
        let files = [
            (
                PathBuf::from("/home/app/.aws/credentials"),
                "[default]\naws_access_key_id = AKIAEXAMPLE\n".to_string(),
            ),
            (
                PathBuf::from("/home/app/.aws/config"),
                "[profile other]\nregion = x\n".to_string(),
            ),
        ];
        let p = plan(
            &env(&[role]),
            &PlanInput {
                aws_files: &files,
                ..input()
            },
        );
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("/home/app/.aws/credentials has a default profile"));
        let config = [(
            PathBuf::from("/c"),
            "[profile default]\nrole_arn = r\n".to_string(),
        )];
        let p = plan(
            &env(&[role]),
            &PlanInput {
                aws_files: &config,
                ..input()
            },
        );
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let p = plan(&env(&[role, ("AWS_PROFILE", "dev")]), &input());
        assert!(
            p.warnings[0].contains("AWS_PROFILE=dev"),
            "{:?}",
            p.warnings
        );
        // An empty default section, or none: no warning.
        let quiet = [(PathBuf::from("/c"), "[default]\n# nothing\n".to_string())];
        let p = plan(
            &env(&[role]),
            &PlanInput {
                aws_files: &quiet,
                ..input()
            },
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            aws_shared_files(&env(&[
                ("HOME", "/home/app"),
                ("AWS_CONFIG_FILE", "/etc/aws")
            ])),
            [
                PathBuf::from("/home/app/.aws/credentials"),
                PathBuf::from("/etc/aws")
            ]
        );
    }

    fn exported<'a>(p: &'a Plan, key: &str) -> Option<&'a str> {
        p.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn nothing_without_variables() {
        assert_eq!(plan(&env(&[("PATH", "/bin")]), &input()), Plan::default());
        assert_eq!(
            plan(&env(&[("AWS_ROLE_ARN", "")]), &input()),
            Plan::default()
        );
        assert!(plan(&env(&[("AZURE_CLIENT_ID", "c")]), &input())
            .tokens
            .is_empty());
    }

    #[test]
    fn aws() {
        let p = plan(
            &env(&[
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ("AWS_REGION", "eu-west-1"),
            ]),
            &input(),
        );
        assert_eq!(
            p.tokens,
            [TokenPlan {
                cloud: Cloud::Aws,
                audience: "sts.amazonaws.com".into(),
                path: "/.fly/oidc_token".into()
            }]
        );
        assert_eq!(
            exported(&p, "AWS_WEB_IDENTITY_TOKEN_FILE"),
            Some("/.fly/oidc_token")
        );
        assert_eq!(
            exported(&p, "AWS_ROLE_SESSION_NAME"),
            Some("e2865d0f9e3d87")
        );
        assert_eq!(exported(&p, "AWS_DEFAULT_REGION"), Some("eu-west-1"));
        assert_eq!(exported(&p, "AWS_REGION"), None, "already set");
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn aws_explicit_session_name_wins_and_static_keys_warn() {
        let p = plan(
            &env(&[
                ("AWS_ROLE_ARN", "arn"),
                ("AWS_ROLE_SESSION_NAME", "mine"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
            ]),
            &PlanInput {
                machine_id: None,
                ..input()
            },
        );
        assert_eq!(exported(&p, "AWS_ROLE_SESSION_NAME"), None);
        assert_eq!(exported(&p, "AWS_REGION"), Some("us-east-1"));
        assert_eq!(p.warnings.len(), 1);
        // Without a machine id the host name is used, sanitised.
        let p = plan(
            &env(&[("AWS_ROLE_ARN", "arn")]),
            &PlanInput {
                machine_id: None,
                hostname: Some("my host"),
                ..input()
            },
        );
        assert_eq!(exported(&p, "AWS_ROLE_SESSION_NAME"), Some("my-host"));
    }

    #[test]
    fn gcp_and_azure() {
        let resource = "projects/123/locations/global/workloadIdentityPools/pool/providers/fly";
        let p = plan(
            &env(&[
                ("GOOGLE_WORKLOAD_IDENTITY_PROVIDER", resource),
                (
                    "GOOGLE_SERVICE_ACCOUNT_EMAIL",
                    "sa@p.iam.gserviceaccount.com",
                ),
                ("AZURE_CLIENT_ID", "client"),
                ("AZURE_TENANT_ID", "tenant"),
            ]),
            &input(),
        );
        assert_eq!(p.tokens.len(), 2);
        assert_eq!(p.tokens[0].cloud, Cloud::Gcp);
        assert_eq!(
            p.tokens[0].audience,
            format!("https://iam.googleapis.com/{resource}")
        );
        assert_eq!(p.tokens[0].path, PathBuf::from("/.fly/gcp_oidc_token"));
        assert_eq!(p.tokens[1].audience, "api://AzureADTokenExchange");
        assert_eq!(
            exported(&p, "GOOGLE_APPLICATION_CREDENTIALS"),
            Some("/.fly/gcp_credentials.json")
        );
        assert_eq!(
            exported(&p, "AZURE_FEDERATED_TOKEN_FILE"),
            Some("/.fly/azure_oidc_token")
        );
        let creds: serde_json::Value = serde_json::from_str(&p.files[0].1).expect("json");
        assert_eq!(creds["type"], "external_account");
        assert_eq!(
            creds["audience"],
            format!("//iam.googleapis.com/{resource}")
        );
        assert_eq!(creds["credential_source"]["file"], "/.fly/gcp_oidc_token");
        assert!(creds["service_account_impersonation_url"]
            .as_str()
            .is_some_and(|u| u.contains("sa@p.iam.gserviceaccount.com:generateAccessToken")));
        assert!(exported(&p, "AWS_WEB_IDENTITY_TOKEN_FILE").is_none());
    }
}
