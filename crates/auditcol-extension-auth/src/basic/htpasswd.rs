//! Apache htpasswd entries: `user:hash`, one per line.
//!
//! Accepted hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`; what `htpasswd -B`
//! writes) and salt-less SHA-1 (`{SHA}` + base64; `htpasswd -s`, kept for
//! old files — it is fast to brute-force, prefer bcrypt). Anything else —
//! plain text, MD5 (`$apr1$`, htpasswd's old default), crypt(3) — is
//! refused when the file is read, with its line number: a plain-text
//! password cannot be told from a hash of an unknown kind, and neither
//! belongs in a file of credentials.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// How one user's password is checked.
#[derive(Clone)]
pub(crate) enum PasswordHash {
    /// A bcrypt hash string, checked (slowly, on purpose) by the bcrypt crate.
    Bcrypt(String),
    /// SHA-1 of the password.
    Sha1([u8; 20]),
}

impl PasswordHash {
    /// Parses the hash of an htpasswd line; the error never quotes it.
    fn parse(hash: &str) -> Result<Self, String> {
        if let Some(encoded) = hash.strip_prefix("{SHA}") {
            let digest = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
                .ok_or("not a valid {SHA} hash (the base64 of a 20-byte SHA-1 digest)")?;
            return Ok(Self::Sha1(digest));
        }
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
                "not a valid bcrypt hash (`$2y$`, a two-digit cost, `$`, then 53 characters of salt and hash)"
            })?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err("the bcrypt cost must be from 04 to 31".into());
            }
            return Ok(Self::Bcrypt(hash.to_owned()));
        }
        let kind = if hash.starts_with("$apr1$") {
            "an MD5 ($apr1$) hash"
        } else if hash.starts_with('$') {
            "a hash of a kind not accepted"
        } else {
            "plain text or crypt(3)"
        };
        Err(format!(
            "the password is not hashed with bcrypt ($2y$, $2b$, $2a$) or SHA-1 ({{SHA}}) but looks like {kind}: write the line with `htpasswd -nB <user>`"
        ))
    }

    /// Whether checking a password is slow (bcrypt), so bounded and cached.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(self, Self::Bcrypt(_))
    }

    /// Whether `password` is the one hashed. Blocks for bcrypt's whole cost.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            // bcrypt compares its digests in constant time; a malformed
            // hash cannot reach here (checked at parse).
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Sha1(digest) => {
                let given: [u8; 20] = Sha1::digest(password).into();
                given.ct_eq(digest).into()
            }
        }
    }
}

/// The users of an htpasswd source.
#[derive(Clone, Default)]
pub(crate) struct Htpasswd {
    users: HashMap<String, PasswordHash>,
    /// The first user of the source: whose hash an unknown user's password
    /// is checked against, so that an unknown user takes as long to refuse
    /// as a known one.
    first: Option<String>,
}

impl Htpasswd {
    /// Parses htpasswd lines. Empty lines and lines starting with `#` are
    /// skipped. Errors name the line (and user), never a hash.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut lines_of: HashMap<&str, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .filter(|(user, _)| !user.is_empty())
                .ok_or_else(|| format!("line {number}: not `user:hash`"))?;
            if let Some(first) = lines_of.insert(user, number) {
                return Err(format!(
                    "line {number}: user `{user}` is already on line {first}"
                ));
            }
            let hash = PasswordHash::parse(hash)
                .map_err(|e| format!("line {number}: user `{user}`: {e}"))?;
            parsed.first.get_or_insert_with(|| user.to_owned());
            parsed.users.insert(user.to_owned(), hash);
        }
        if parsed.users.is_empty() {
            return Err("holds no user: write `user:hash` lines (`htpasswd -nB <user>`)".into());
        }
        Ok(parsed)
    }

    /// These users, with `over`'s added and taking precedence (the
    /// Collector's rule for `file` and `inline`).
    pub(crate) fn overridden_by(mut self, over: &Htpasswd) -> Self {
        for (user, hash) in &over.users {
            self.users.insert(user.clone(), hash.clone());
        }
        self
    }

    /// The hash of `user`.
    pub(crate) fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    /// The hash an unknown user's password is checked against.
    pub(crate) fn stand_in(&self) -> Option<&PasswordHash> {
        self.first.as_deref().and_then(|user| self.get(user))
    }

    /// How many users there are.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Made with crypt(3) of libxcrypt (Python: crypt.crypt(password, "$2y$04$<salt>")),
    // an implementation independent of the bcrypt crate.
    pub(crate) const FLIPT_LINE: &str =
        "flipt:$2y$04$Kx7Qd2mWv9bN3sLp5tR8eOFi7MTwP3AUgz7uKvPpP8f5d/VSf3Gfy";
    pub(crate) const FLIPT_PASSWORD: &str = "flipt-password-1";
    pub(crate) const AGENT_LINE: &str =
        "agent:$2b$04$Hq3Zk8VnT1cW6yJm0rF4aOXO.53.I309qV3ZiU3rkTWVhmU5y2aSu";
    pub(crate) const AGENT_PASSWORD: &str = "agent-password-2";
    pub(crate) const SIEM_LINE: &str =
        "siem:$2a$04$Pn5Rt7Yx2Bv4Dq9Lz1Wc3O7.Q2tcFtf9PCKSXfNCeF7ujzgSZLgwG";
    pub(crate) const SIEM_PASSWORD: &str = "siem-password-3";
    // `printf legacy-password-4 | openssl dgst -sha1 -binary | base64`
    pub(crate) const LEGACY_LINE: &str = "legacy:{SHA}fyq/3GEuFwk/MfwURKG9VbudZ6Y=";
    pub(crate) const LEGACY_PASSWORD: &str = "legacy-password-4";

    fn all() -> String {
        [FLIPT_LINE, AGENT_LINE, SIEM_LINE, LEGACY_LINE].join("\n")
    }

    #[test]
    fn bcrypt_of_every_prefix_and_sha_verify_their_password_only() {
        let file = Htpasswd::parse(&all()).unwrap();
        assert_eq!(file.len(), 4);
        for (user, password) in [
            ("flipt", FLIPT_PASSWORD),
            ("agent", AGENT_PASSWORD),
            ("siem", SIEM_PASSWORD),
            ("legacy", LEGACY_PASSWORD),
        ] {
            let hash = file.get(user).unwrap();
            assert!(hash.verify(password.as_bytes()), "{user}");
            assert!(!hash.verify(b"wrong"), "{user}");
            assert!(!hash.verify(b""), "{user}");
            assert_eq!(hash.is_slow(), user != "legacy");
        }
        assert!(file.get("nobody").is_none());
        assert!(file.stand_in().unwrap().is_slow(), "the first user's hash");
    }

    #[test]
    fn the_published_openbsd_vector_verifies() {
        // crypt_blowfish's test vector for "U*U".
        let file =
            Htpasswd::parse("u:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
                .unwrap();
        assert!(file.get("u").unwrap().verify(b"U*U"));
        assert!(!file.get("u").unwrap().verify(b"U*U*"));
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_skipped() {
        let text = format!("# users\r\n\r\n{FLIPT_LINE}\r\n  {LEGACY_LINE}  \n");
        let file = Htpasswd::parse(&text).unwrap();
        assert_eq!(file.len(), 2);
        assert!(
            file.get("legacy")
                .unwrap()
                .verify(LEGACY_PASSWORD.as_bytes())
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_number_and_without_their_hash() {
        let cases = [
            (
                format!("{FLIPT_LINE}\nbob:plain-secret"),
                "line 2: user `bob`: the password is not hashed with bcrypt ($2y$, $2b$, $2a$) or SHA-1 ({SHA}) but looks like plain text or crypt(3): write the line with `htpasswd -nB <user>`",
            ),
            (
                "bob:$apr1$secretsa$ltq8V1Y0ncuqcLQ8pTw6n1".to_owned(),
                "line 1: user `bob`: the password is not hashed with bcrypt ($2y$, $2b$, $2a$) or SHA-1 ({SHA}) but looks like an MD5 ($apr1$) hash",
            ),
            (
                "bob:$6$secretsalt$abc".to_owned(),
                "line 1: user `bob`: the password is not hashed with bcrypt ($2y$, $2b$, $2a$) or SHA-1 ({SHA}) but looks like a hash of a kind not accepted",
            ),
            (
                "bob:$2x$04$Kx7Qd2mWv9bN3sLp5tR8eOFi7MTwP3AUgz7uKvPpP8f5d/VSf3Gfy".to_owned(),
                "line 1: user `bob`: the password is not hashed with bcrypt",
            ),
            (
                "\n\nbob:$2y$04$secret-too-short".to_owned(),
                "line 3: user `bob`: not a valid bcrypt hash",
            ),
            (
                "bob:$2y$03$Kx7Qd2mWv9bN3sLp5tR8eOFi7MTwP3AUgz7uKvPpP8f5d/VSf3Gfy".to_owned(),
                "line 1: user `bob`: the bcrypt cost must be from 04 to 31",
            ),
            (
                "bob:{SHA}c2VjcmV0".to_owned(),
                "line 1: user `bob`: not a valid {SHA} hash",
            ),
            ("no colon here secret".to_owned(), "line 1: not `user:hash`"),
            (
                ":{SHA}fyq/3GEuFwk/MfwURKG9VbudZ6Y=".to_owned(),
                "line 1: not `user:hash`",
            ),
            (
                format!("{LEGACY_LINE}\n# x\n{LEGACY_LINE}"),
                "line 3: user `legacy` is already on line 1",
            ),
            ("# nobody\n".to_owned(), "holds no user"),
        ];
        for (text, want) in cases {
            let err = Htpasswd::parse(&text).err().unwrap();
            assert!(err.starts_with(want), "{text}\n{err}\nwanted: {want}");
            assert!(!err.contains("secret"), "{err}");
            assert!(!err.contains("Kx7Qd2"), "{err}");
        }
    }

    #[test]
    fn inline_entries_take_precedence_over_the_files() {
        let file = Htpasswd::parse(&format!("{FLIPT_LINE}\n{LEGACY_LINE}")).unwrap();
        let inline = Htpasswd::parse(&format!(
            "legacy:{{SHA}}{}",
            STANDARD.encode(Sha1::digest(b"replaced"))
        ))
        .unwrap();
        let merged = file.overridden_by(&inline);
        assert_eq!(merged.len(), 2);
        assert!(merged.get("legacy").unwrap().verify(b"replaced"));
        assert!(
            !merged
                .get("legacy")
                .unwrap()
                .verify(LEGACY_PASSWORD.as_bytes())
        );
        assert!(merged.get("flipt").is_some());
    }
}
