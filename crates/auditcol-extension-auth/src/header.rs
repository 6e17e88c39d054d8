//! Reading a credential out of request headers, the same way for both
//! authenticators. Messages name the header and what is wrong, never its value.

use auditcol_core::auth::{AuthError, HeaderMap, HeaderName};

/// The one value of `name` in `headers`: refused when absent or repeated
/// (two credentials would leave open which one counts).
pub(crate) fn single_value<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<&'h [u8], AuthError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| AuthError::Unauthenticated(format!("no {name} header")))?;
    if values.next().is_some() {
        return Err(AuthError::Unauthenticated(format!(
            "{name} header given more than once"
        )));
    }
    Ok(value.as_bytes())
}

/// The credential of `<scheme> <credential>`. The scheme is compared
/// without regard to case (RFC 9110); an empty `scheme` takes the whole value.
pub(crate) fn credential<'v>(
    value: &'v [u8],
    scheme: &str,
    name: &HeaderName,
) -> Result<&'v [u8], AuthError> {
    let value = value.trim_ascii();
    if scheme.is_empty() {
        return non_empty(value, name);
    }
    let wrong_scheme = || AuthError::Unauthenticated(format!("{name} header is not `{scheme} …`"));
    let (given, rest) = value
        .split_at_checked(scheme.len())
        .ok_or_else(wrong_scheme)?;
    if !given.eq_ignore_ascii_case(scheme.as_bytes()) || !rest.starts_with(b" ") {
        return Err(wrong_scheme());
    }
    non_empty(rest.trim_ascii_start(), name)
}

fn non_empty<'v>(credential: &'v [u8], name: &HeaderName) -> Result<&'v [u8], AuthError> {
    if credential.is_empty() {
        Err(AuthError::Unauthenticated(format!(
            "{name} header holds no credential"
        )))
    } else {
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::auth::HeaderValue;

    fn auth() -> HeaderName {
        HeaderName::from_static("authorization")
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("authorization", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn reason(result: Result<&[u8], AuthError>) -> String {
        result.unwrap_err().reason().to_owned()
    }

    #[test]
    fn one_value_is_required() {
        assert_eq!(single_value(&headers(&["x"]), &auth()).unwrap(), b"x");
        assert_eq!(
            reason(single_value(&headers(&[]), &auth())),
            "no authorization header"
        );
        assert_eq!(
            reason(single_value(&headers(&["a", "b"]), &auth())),
            "authorization header given more than once"
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_credential_follows_a_space() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER   t0k", " Bearer t0k "] {
            assert_eq!(
                credential(value.as_bytes(), "Bearer", &auth()).unwrap(),
                b"t0k",
                "{value}"
            );
        }
        assert_eq!(credential(b"t0k", "", &auth()).unwrap(), b"t0k");
    }

    #[test]
    fn another_scheme_or_no_credential_is_refused_without_echoing_the_value() {
        for value in ["Basic dXNlcjpwYXNz", "Bearert0k", "Bear", "t0k"] {
            let why = reason(credential(value.as_bytes(), "Bearer", &auth()));
            assert_eq!(why, "authorization header is not `Bearer …`", "{value}");
        }
        assert_eq!(
            reason(credential(b"Bearer ", "Bearer", &auth())),
            "authorization header is not `Bearer …`",
            "trimmed to `Bearer`: no space follows"
        );
        assert_eq!(
            reason(credential(b"Bearer  \t", "Bearer", &auth())),
            "authorization header is not `Bearer …`"
        );
        assert_eq!(
            reason(credential(b"  ", "", &auth())),
            "authorization header holds no credential"
        );
    }
}
