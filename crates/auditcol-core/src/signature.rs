//! Body signatures as webhooks carry them: the lower-case hex HMAC-SHA256 of
//! the exact body bytes, keyed with a shared secret. Flipt's webhook sink
//! (`x-flipt-webhook-signature`), Flagsmith (`X-Flagsmith-Signature`) and
//! auditcol's own webhook exporter all sign this way; the webhook receiver
//! verifies it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 in bytes.
const MAC_LEN: usize = 32;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Signs and verifies bodies with one secret.
#[derive(Clone)]
pub struct BodySigner {
    /// Keyed once; cloned per body (the key schedule is not redone).
    keyed: HmacSha256,
}

/// Why a given signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMismatch {
    /// Not 64 hexadecimal digits.
    Malformed,
    /// Not the body's signature.
    Mismatch,
}

impl std::fmt::Debug for BodySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("BodySigner")
    }
}

impl BodySigner {
    /// A signer keyed with `secret`.
    pub fn new(secret: &str) -> Self {
        let keyed =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        Self { keyed }
    }

    /// The signature of `body`: 64 lower-case hex digits.
    pub fn sign_hex(&self, body: &[u8]) -> String {
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

    /// Accepts `given` (hex, either case, surrounding spaces ignored) only
    /// when it is the signature of `body`. The comparison takes the same time
    /// wherever the signatures differ.
    pub fn verify_hex(&self, given: &[u8], body: &[u8]) -> Result<(), SignatureMismatch> {
        let given = decode_hex(given.trim_ascii()).ok_or(SignatureMismatch::Malformed)?;
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| SignatureMismatch::Mismatch)
    }
}

/// 64 hex digits (either case) → 32 bytes. A signature is public input, so
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

    #[test]
    fn the_signature_is_the_lower_case_hex_hmac_sha256_of_the_body() {
        // The HMAC-SHA256 example of the Wikipedia article on HMAC.
        let signer = BodySigner::new("key");
        let body = b"The quick brown fox jumps over the lazy dog";
        let expected = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(signer.sign_hex(body), expected);
        assert_eq!(signer.verify_hex(expected.as_bytes(), body), Ok(()));
        let upper = format!(" {} ", expected.to_uppercase());
        assert_eq!(signer.verify_hex(upper.as_bytes(), body), Ok(()));
    }

    #[test]
    fn another_body_or_secret_does_not_match_and_non_hex_is_malformed() {
        let signature = BodySigner::new("s3cret").sign_hex(b"{}");
        assert_eq!(
            BodySigner::new("other").verify_hex(signature.as_bytes(), b"{}"),
            Err(SignatureMismatch::Mismatch)
        );
        assert_eq!(
            BodySigner::new("s3cret").verify_hex(signature.as_bytes(), b"{ }"),
            Err(SignatureMismatch::Mismatch)
        );
        for bad in [
            "",
            "sha256=abc",
            &signature[..63],
            &format!("{}g", &signature[..63]),
        ] {
            assert_eq!(
                BodySigner::new("s3cret").verify_hex(bad.as_bytes(), b"{}"),
                Err(SignatureMismatch::Malformed),
                "{bad:?}"
            );
        }
    }
}
