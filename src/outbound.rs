//! What every HTTP call signhook makes shares — to the providers' APIs, to
//! the application's destinations, from the simulator: how long a
//! `Retry-After` asks to wait, and an error told with its causes.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110); `None` when it
/// is neither. A date in the past means "now".
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// An error and its causes on one line (reqwest's own text omits them).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As a destination's answer is read: `now` is the moment it arrived.
    fn wait(value: &str) -> Option<Duration> {
        retry_after(value, Utc::now())
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(wait("120"), Some(Duration::from_secs(120)));
        assert_eq!(wait(" 0 "), Some(Duration::ZERO));
        assert_eq!(wait("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = (Utc::now() + chrono::Duration::seconds(3600)).to_rfc2822();
        let waited = wait(&later).expect("a date");
        assert!(
            waited > Duration::from_secs(3500) && waited <= Duration::from_secs(3600),
            "{waited:?}"
        );
        assert_eq!(wait("soon"), None);
        assert_eq!(wait("-5"), None);
    }
}
