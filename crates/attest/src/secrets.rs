//! Names that look like they hold secrets: their values never go into provenance.
//!
//! BuildKit records every build argument's value in `mode=max` provenance; a token passed as
//! `--build-arg NPM_TOKEN=...` would then be published with the image. whittle records such an
//! argument's name with its value replaced by [`REDACTED`]. The test is BuildKit's
//! `SecretsUsedInArgOrEnv` word list, made stricter: any `_`/`-`/`.`-separated part (or the
//! whole name) that is or contains a secret word, and no allow list.

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

const WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "key",
    "passphrase",
    "passwd",
    "password",
    "pat",
    "private",
    "pword",
    "secret",
    "token",
    "cert",
    "signature",
    "session",
    "cookie",
    "dsn",
];

/// Whether a name looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if [
        "secret",
        "token",
        "passw",
        "credential",
        "apikey",
        "api_key",
        "private",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return true;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| WORDS.contains(&part))
}

/// `value`, or [`REDACTED`] when `name` looks secret.
pub fn redact<'a>(name: &str, value: &'a str) -> &'a str {
    if looks_secret(name) {
        REDACTED
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names() {
        for n in [
            "NPM_TOKEN",
            "GITHUB_TOKEN",
            "githubToken",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "api-key",
            "SSH_PRIVATE_KEY",
            "PASSWD",
            "auth",
            "SENTRY_DSN",
        ] {
            assert!(looks_secret(n), "{n}");
            assert_eq!(redact(n, "v"), REDACTED);
        }
        for n in [
            "VERSION",
            "GO_VERSION",
            "TARGETARCH",
            "HTTP_PROXY",
            "DEBIAN_FRONTEND",
            "KEYBOARD",
        ] {
            assert!(!looks_secret(n), "{n}");
            assert_eq!(redact(n, "v"), "v");
        }
    }
}
