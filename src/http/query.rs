//! Query-string values the admin API's listings share, each refused with one
//! wording (`400 invalid_query`).

use super::error::ApiError;

/// Rows per page when `limit` is not given, and the most a page may hold.
pub(super) const DEFAULT_PAGE: i64 = 100;
pub(super) const MAX_PAGE: i64 = 1000;

/// `400 invalid_query` saying `message`.
pub(super) fn invalid(message: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        message,
    }
}

/// `limit`: absent or empty is [`DEFAULT_PAGE`], else an integer from 1 to
/// [`MAX_PAGE`].
pub(super) fn page_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None | Some("") => Ok(DEFAULT_PAGE),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}; got `{s}`"))),
    }
}

/// A `cursor` this API handed out, read back by `parse`; absent or empty is
/// the first page.
pub(super) fn cursor<T>(raw: Option<&str>, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => parse(s)
            .map(Some)
            .ok_or_else(|| invalid(format!("cursor `{s}` is not one this API returned"))),
    }
}
