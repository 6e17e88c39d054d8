//! Request signatures: the lower-case hex HMAC-SHA256 of the raw body, keyed
//! with the shared secret — what Flipt's webhook sink
//! (`x-flipt-webhook-signature`) and Flagsmith (`X-Flagsmith-Signature`)
//! both send.

use auditcol_core::signature::{BodySigner, SignatureMismatch};
use http::{HeaderMap, HeaderName};

/// Checks request signatures against one secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    header: HeaderName,
    signer: BodySigner,
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is absent.
    #[error(
        "missing {0} header: requests must be signed with the shared signing_secret (lower-case hex HMAC-SHA256 of the body)"
    )]
    Missing(HeaderName),
    /// The header appears more than once.
    #[error("{0} header given more than once: send one signature")]
    Repeated(HeaderName),
    /// The header is not 64 hexadecimal digits.
    #[error("{0} header is not an HMAC-SHA256 in hex (64 hexadecimal digits)")]
    Malformed(HeaderName),
    /// The signature is not the body's.
    #[error(
        "{0} header does not match the body: the sender and this receiver must share the same signing_secret, and the body must arrive unchanged"
    )]
    Mismatch(HeaderName),
}

impl SignatureVerifier {
    /// A verifier for `secret`, reading signatures from `header`.
    pub fn new(secret: &str, header: HeaderName) -> Self {
        Self {
            header,
            signer: BodySigner::new(secret),
        }
    }

    /// The header signatures are read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Accepts `body` only when `headers` carry exactly one signature and it
    /// is the body's. The comparison takes the same time wherever the
    /// signatures differ.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values
            .next()
            .ok_or_else(|| SignatureError::Missing(self.header.clone()))?;
        if values.next().is_some() {
            return Err(SignatureError::Repeated(self.header.clone()));
        }
        self.signer
            .verify_hex(value.as_bytes(), body)
            .map_err(|e| match e {
                SignatureMismatch::Malformed => SignatureError::Malformed(self.header.clone()),
                SignatureMismatch::Mismatch => SignatureError::Mismatch(self.header.clone()),
            })
    }

    /// The signature of `body`, as a sender computes it.
    #[cfg(test)]
    pub fn sign(&self, body: &[u8]) -> String {
        self.signer.sign_hex(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const HEADER: &str = "x-flagsmith-signature";

    fn verifier(secret: &str) -> SignatureVerifier {
        SignatureVerifier::new(secret, HeaderName::from_static(HEADER))
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HEADER, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_signature_is_the_lower_case_hex_hmac_sha256_of_the_body() {
        // The HMAC-SHA256 example of the Wikipedia article on HMAC.
        let v = verifier("key");
        let body = b"The quick brown fox jumps over the lazy dog";
        let expected = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(v.sign(body), expected);
        assert_eq!(v.verify(&headers(&[expected]), body), Ok(()));
    }

    #[test]
    fn upper_case_hex_and_surrounding_spaces_are_the_same_signature() {
        let v = verifier("s3cret");
        let body = b"{}";
        let signature = v.sign(body).to_uppercase();
        assert_eq!(
            v.verify(&headers(&[&format!(" {signature} ")]), body),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_or_another_secret_does_not_match() {
        let body = br#"{"log":"New Flag / Remote Config created: my_feature"}"#;
        let signature = verifier("s3cret").sign(body);
        let mut changed = body.to_vec();
        changed[10] ^= 1;
        assert!(matches!(
            verifier("s3cret").verify(&headers(&[&signature]), &changed),
            Err(SignatureError::Mismatch(_))
        ));
        assert!(matches!(
            verifier("other").verify(&headers(&[&signature]), body),
            Err(SignatureError::Mismatch(_))
        ));
    }

    #[test]
    fn a_missing_repeated_or_malformed_signature_is_refused() {
        let v = verifier("s3cret");
        let good = v.sign(b"x");
        assert!(matches!(
            v.verify(&HeaderMap::new(), b"x"),
            Err(SignatureError::Missing(_))
        ));
        assert!(matches!(
            v.verify(&headers(&[&good, &good]), b"x"),
            Err(SignatureError::Repeated(_))
        ));
        for bad in [
            "",
            "sha256=abc",
            &good[..63],
            &format!("{good}0"),
            &format!("{}g", &good[..63]),
        ] {
            assert!(
                matches!(
                    v.verify(&headers(&[bad]), b"x"),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_header() {
        let err = verifier("s").verify(&HeaderMap::new(), b"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("missing x-flagsmith-signature header")
        );
    }
}
