//! Request signatures: the lower-case hex HMAC-SHA256 of the raw body, keyed
//! with the shared secret — what Flipt's webhook sink
//! (`x-flipt-webhook-signature`) and Flagsmith (`X-Flagsmith-Signature`)
//! both send.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 in bytes.
const MAC_LEN: usize = 32;

/// Checks request signatures against one secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    header: HeaderName,
    /// Keyed once; cloned per request (HMAC's key schedule is not redone).
    keyed: HmacSha256,
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
        let keyed =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        Self { header, keyed }
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
        let given = decode_hex(value.as_bytes().trim_ascii())
            .ok_or_else(|| SignatureError::Malformed(self.header.clone()))?;
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| SignatureError::Mismatch(self.header.clone()))
    }

    /// The signature of `body`, as a sender computes it.
    #[cfg(test)]
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(2 * MAC_LEN);
        for byte in digest.iter() {
            hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
        }
        hex
    }
}

#[cfg(test)]
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// 64 hex digits (either case) → 32 bytes. The header is public input, so
/// decoding it need not be constant-time; the comparison is.
fn decode_hex(text: &[u8]) -> Option<[u8; MAC_LEN]> {
    if text.len() != 2 * MAC_LEN {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; MAC_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
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
