//! Normalized agreement status and the rules for moving between statuses.
//!
//! Providers deliver events late, twice and out of order, so the worker never
//! "sets" a status: it asks [`transition`] whether an incoming event may replace
//! the current one. These are pure functions so the rules are unit-tested here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The one status vocabulary shared by every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    Draft,
    InProgress,
    Completed,
    Declined,
    Cancelled,
    Expired,
    Failed,
}

impl AgreementStatus {
    pub const ALL: [AgreementStatus; 7] = [
        Self::Draft,
        Self::InProgress,
        Self::Completed,
        Self::Declined,
        Self::Cancelled,
        Self::Expired,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// A terminal status ends the agreement's life: nothing that happened
    /// before it, and no non-terminal event at all, may replace it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Declined | Self::Cancelled | Self::Expired)
    }

    /// Tie-breaker for two events stamped with the same instant (BoldSign
    /// stamps whole seconds): the one further along the lifecycle wins.
    fn rank(self) -> u8 {
        match self {
            Self::Draft => 0,
            Self::InProgress => 1,
            Self::Failed => 2,
            _ => 3,
        }
    }
}

/// The status an agreement holds now, and the time of the event that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub status: AgreementStatus,
    pub at: DateTime<Utc>,
}

/// Whether an event that says `incoming` at `at` replaces `current`.
///
/// - No current status: the event sets it.
/// - Current is terminal: only a *terminal* event that happened *later*
///   replaces it (a late "viewed" must never reopen a signed contract).
/// - A terminal event replaces any non-terminal status, whatever its time (a
///   "viewed" stamped after completion may arrive before the completion).
/// - Otherwise the later event wins; at the same instant the status further
///   along the lifecycle wins.
pub fn transition(current: Option<Current>, incoming: AgreementStatus, at: DateTime<Utc>) -> bool {
    let Some(current) = current else {
        return true;
    };
    if current.status.is_terminal() {
        return incoming.is_terminal() && at > current.at;
    }
    if incoming.is_terminal() {
        return true;
    }
    at > current.at || (at == current.at && incoming.rank() >= current.status.rank())
}

#[cfg(test)]
mod tests {
    use super::AgreementStatus::*;
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid test timestamp")
    }

    #[test]
    fn transition_table() {
        // (current, current_at, incoming, incoming_at, applies)
        let cases = [
            (None, 0, InProgress, 0, true),
            (Some(InProgress), 10, Completed, 20, true),
            (Some(InProgress), 10, Draft, 5, false),
            (Some(Draft), 10, InProgress, 10, true),
            (Some(InProgress), 10, Draft, 10, false),
            (Some(Completed), 20, InProgress, 10, false),
            (Some(Completed), 20, InProgress, 30, false),
            (Some(Completed), 20, Cancelled, 10, false),
            (Some(Expired), 20, Completed, 30, true),
            (Some(Declined), 20, Declined, 20, false),
            (Some(Failed), 10, InProgress, 20, true),
            (Some(InProgress), 10, Failed, 20, true),
            (Some(Failed), 10, Completed, 5, true),
            (Some(InProgress), 30, Completed, 5, true),
            (Some(Draft), 30, Expired, 5, true),
        ];
        for (current, cur_at, incoming, at, expected) in cases {
            let current = current.map(|status| Current { status, at: t(cur_at) });
            assert_eq!(
                transition(current, incoming, t(at)),
                expected,
                "{current:?} <- {incoming:?}@{at}"
            );
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in AgreementStatus::ALL {
            assert_eq!(AgreementStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(AgreementStatus::parse("signed"), None);
    }
}
