//! Webhook credentials: reading a provider's authentication header, and
//! comparing secrets in constant time.

use axum::http::{header::InvalidHeaderValue, HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use super::ProviderError;

/// A provider's authentication header, and the error codes for its absence
/// and its misuse.
pub struct CredentialHeader {
    /// As documented (`X-BoldSign-Signature`); lookups are case-insensitive.
    pub name: &'static str,
    pub missing_code: &'static str,
    pub malformed_code: &'static str,
}

impl CredentialHeader {
    /// The header's single, non-empty, visible-ASCII value. Several copies are
    /// refused rather than guessed between.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, ProviderError> {
        let malformed = |message: String| ProviderError::InvalidCredential {
            code: self.malformed_code,
            message,
        };
        let mut values = headers.get_all(self.name).iter();
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value
                .to_str()
                .map_err(|_| malformed(format!("the {} header is not visible ASCII", self.name)))?
                .trim(),
            (Some(_), Some(_)) => return Err(malformed(format!("the {} header appears more than once", self.name))),
            (None, _) => "",
        };
        if value.is_empty() {
            return Err(ProviderError::MissingCredential {
                code: self.missing_code,
                message: format!("the {} header is required", self.name),
            });
        }
        Ok(value)
    }

    /// Headers carrying `value` in this header, as the provider sends it.
    pub fn carrying(&self, value: &str) -> Result<HeaderMap, InvalidHeaderValue> {
        let name = HeaderName::from_bytes(self.name.as_bytes()).expect("a provider's header name is a valid one");
        Ok(HeaderMap::from_iter([(name, HeaderValue::from_str(value)?)]))
    }
}

/// Whether `candidate` equals one of `accepted`, comparing every entry in
/// constant time so timing reveals neither which entry nor how much matched.
pub fn matches_any(candidate: &[u8], accepted: &[impl AsRef<[u8]>]) -> bool {
    accepted
        .iter()
        .fold(subtle::Choice::from(0), |found, secret| {
            found | candidate.ct_eq(secret.as_ref())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_any_compares_whole_values() {
        let accepted = ["alpha", "beta"];
        assert!(matches_any(b"beta", &accepted));
        assert!(!matches_any(b"bet", &accepted));
        assert!(!matches_any(b"", &accepted));
        assert!(!matches_any(b"alpha", &[] as &[&str]));
    }
}
