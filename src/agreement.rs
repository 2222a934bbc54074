//! Normalized agreement status, and the one fold that moves an agreement:
//! webhook batches, the reconciler's polls and manual refreshes all call
//! [`AgreementState::apply`] and write back what it leaves; SQL never
//! re-implements these rules.
//!
//! Providers deliver events late, twice and out of order, so a change never
//! "sets" a status: [`transition`] decides whether it may replace the current
//! one. Two rules keep an event that anyone could have sent (the webhook URL
//! is public) from deciding an agreement's fate on its own: its time is
//! bounded by when it was received ([`ordering_time`]), and a final status
//! from a weakly authenticated webhook is held until the provider's API
//! confirms it ([`Change::confirm_final`]). Everything here is pure, so the
//! rules are unit-tested next to them.

use chrono::{DateTime, Duration, Utc};
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

    /// The statuses that end an agreement's life, in the order the SQL that
    /// selects open agreements lists them (see `store::reconcile::OPEN`).
    pub const TERMINAL: [AgreementStatus; 4] = [Self::Completed, Self::Declined, Self::Cancelled, Self::Expired];

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
        Self::TERMINAL.contains(&self)
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

/// When an event is ordered, and whether that is not the time it states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderedAt {
    pub at: DateTime<Utc>,
    /// The event states a time more than the allowed skew after it was
    /// received; it is ordered at its receipt instead.
    pub clamped: bool,
}

/// The time an event is ordered by: the time the provider stated, unless
/// that lies more than `max_skew` after signhook received it (no event
/// reports the future; a forged `9999-12-31` would otherwise outrank every
/// genuine event for good), in which case its receipt time. An event without
/// a time of its own is ordered by its receipt.
pub fn ordering_time(stated: Option<DateTime<Utc>>, received: DateTime<Utc>, max_skew: Duration) -> OrderedAt {
    let latest = received
        .checked_add_signed(max_skew)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    match stated {
        Some(at) if at > latest => OrderedAt {
            at: received,
            clamped: true,
        },
        Some(at) => OrderedAt { at, clamped: false },
        None => OrderedAt {
            at: received,
            clamped: false,
        },
    }
}

/// What an agreement row holds that the rules read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreementState {
    pub status: Option<AgreementStatus>,
    /// When the change that set `status` happened.
    pub status_at: Option<DateTime<Utc>>,
    /// The provider's own word for `status`, from the change that set it.
    pub provider_status: Option<String>,
    pub name: Option<String>,
    /// The latest time of an event about the agreement (a poll is not one).
    pub last_event_at: Option<DateTime<Utc>>,
    /// A final status from a weakly authenticated webhook is held until the
    /// provider's API is read (see [`Change::confirm_final`]); the poll that
    /// resolves it clears this.
    pub confirm_pending: bool,
}

/// Where a change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A webhook event, at the time the provider stamped it (or received).
    Event,
    /// The provider's API read at some instant (the reconciler, a refresh).
    Poll,
}

/// One change to fold in: what an event or a poll says about the agreement.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub source: Source,
    pub at: DateTime<Utc>,
    /// `None`: the change says nothing about the status.
    pub status: Option<AgreementStatus>,
    pub provider_status: Option<&'a str>,
    pub name: Option<&'a str>,
    /// The change comes from a webhook whose credential an outsider may
    /// know (Adobe's client ID, FuseSign's static value) while the
    /// provider's API can be asked: a final status it would set is held,
    /// not applied, until a poll confirms it.
    pub confirm_final: bool,
}

/// What folding one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    Unchanged,
    Changed,
    /// The change's final status is held for confirmation (other parts of
    /// it, such as its time, may have been folded in).
    Held,
}

impl Folded {
    /// Whether the state changed (and so is written back).
    pub fn changed(self) -> bool {
        self != Self::Unchanged
    }
}

impl AgreementState {
    /// Folds `change` in, the same way whatever order changes come in;
    /// returns whether the state changed (only then is it written back) or
    /// the change's final status was held.
    ///
    /// - The status moves as [`transition`] allows, taking the change's time
    ///   and provider status with it; a final status that must be confirmed
    ///   first ([`Change::confirm_final`]) is held instead: the status stays
    ///   and `confirm_pending` is set.
    /// - The name of the latest change wins (at or after the last event); an
    ///   older one only fills a gap.
    /// - `last_event_at` is the latest event time; polls leave it alone.
    pub fn apply(&mut self, change: &Change<'_>) -> Folded {
        let before_event = self.last_event_at.is_some_and(|last| change.at < last);
        let mut changed = false;
        let mut held = false;
        let current = self
            .status
            .zip(self.status_at)
            .map(|(status, at)| Current { status, at });
        if let Some(incoming) = change.status.filter(|s| transition(current, *s, change.at)) {
            if change.confirm_final && incoming.is_terminal() {
                held = true;
                changed |= replace(&mut self.confirm_pending, true);
            } else {
                changed |= replace(&mut self.status, Some(incoming));
                changed |= replace(&mut self.status_at, Some(change.at));
                changed |= replace_str(&mut self.provider_status, change.provider_status);
            }
        }
        if let Some(name) = change.name {
            if !before_event || self.name.is_none() {
                changed |= replace_str(&mut self.name, Some(name));
            }
        }
        if change.source == Source::Event && !before_event {
            changed |= replace(&mut self.last_event_at, Some(change.at));
        }
        match (held, changed) {
            (true, _) => Folded::Held,
            (false, true) => Folded::Changed,
            (false, false) => Folded::Unchanged,
        }
    }
}

/// The status an agreement had before a fold step that moved its normalized
/// or provider status: what a change record carries as "previous".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub status: Option<AgreementStatus>,
    pub provider_status: Option<String>,
}

impl AgreementState {
    /// [`AgreementState::apply`], also telling whether the step moved the
    /// normalized or the provider status (the one rule for what is a
    /// *change* the application is told about): `Some(previous)` then. A
    /// rename or a later `last_event_at` alone is not a change.
    pub fn apply_tracked(&mut self, change: &Change<'_>) -> (Folded, Option<Previous>) {
        let previous = Previous {
            status: self.status,
            provider_status: self.provider_status.clone(),
        };
        let folded = self.apply(change);
        let moved =
            folded.changed() && (self.status != previous.status || self.provider_status != previous.provider_status);
        (folded, moved.then_some(previous))
    }
}

fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    let changed = *slot != value;
    *slot = value;
    changed
}

/// As [`replace`], allocating only when the text differs.
fn replace_str(slot: &mut Option<String>, value: Option<&str>) -> bool {
    if slot.as_deref() == value {
        return false;
    }
    *slot = value.map(str::to_owned);
    true
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

    /// A state with `status` set at `status_at`, named `name`, last event at `last`.
    fn state(status: Option<(AgreementStatus, i64, &str)>, name: Option<&str>, last: Option<i64>) -> AgreementState {
        AgreementState {
            status: status.map(|s| s.0),
            status_at: status.map(|s| t(s.1)),
            provider_status: status.map(|s| s.2.to_owned()),
            name: name.map(str::to_owned),
            last_event_at: last.map(t),
            confirm_pending: false,
        }
    }

    #[test]
    fn fold_table() {
        use Source::*;
        let signed = Some((Completed, 20, "SIGNED"));
        let out = Some((InProgress, 10, "OUT_FOR_SIGNATURE"));
        // (before, change (source, at, status, provider status, name), after, changed)
        let cases = [
            // A first event sets everything.
            (
                state(None, None, None),
                (Event, 10, Some(InProgress), Some("OUT_FOR_SIGNATURE"), Some("NDA")),
                state(out, Some("NDA"), Some(10)),
                true,
            ),
            // A later terminal event moves the status, renames, and advances last_event_at.
            (
                state(out, Some("NDA"), Some(10)),
                (Event, 20, Some(Completed), Some("SIGNED"), Some("NDA v2")),
                state(signed, Some("NDA v2"), Some(20)),
                true,
            ),
            // A late "viewed": no status change, no rename, last_event_at stays.
            (
                state(signed, Some("NDA v2"), Some(20)),
                (Event, 15, Some(InProgress), Some("OUT_FOR_SIGNATURE"), Some("NDA")),
                state(signed, Some("NDA v2"), Some(20)),
                false,
            ),
            // An older event fills a missing name.
            (
                state(signed, None, Some(20)),
                (Event, 15, None, None, Some("NDA")),
                state(signed, Some("NDA"), Some(20)),
                true,
            ),
            // An event that says nothing new about status or name still moves last_event_at.
            (
                state(signed, Some("NDA"), Some(20)),
                (Event, 25, None, None, None),
                state(signed, Some("NDA"), Some(25)),
                true,
            ),
            // A replayed copy of the same event changes nothing.
            (
                state(signed, Some("NDA"), Some(20)),
                (Event, 20, Some(Completed), Some("SIGNED"), Some("NDA")),
                state(signed, Some("NDA"), Some(20)),
                false,
            ),
            // A terminal event stamped before the in-flight one still finishes the agreement.
            (
                state(Some((InProgress, 30, "OUT_FOR_SIGNATURE")), None, Some(30)),
                (Event, 5, Some(Completed), Some("SIGNED"), None),
                state(Some((Completed, 5, "SIGNED")), None, Some(30)),
                true,
            ),
            // A poll moves the status and renames, but is not an event.
            (
                state(out, Some("NDA"), Some(10)),
                (Poll, 40, Some(Completed), Some("SIGNED"), Some("NDA (signed)")),
                state(Some((Completed, 40, "SIGNED")), Some("NDA (signed)"), Some(10)),
                true,
            ),
            // A poll of a finished agreement that reads "in progress" changes nothing.
            (
                state(signed, Some("NDA"), Some(20)),
                (Poll, 40, Some(InProgress), Some("OUT_FOR_SIGNATURE"), Some("NDA")),
                state(signed, Some("NDA"), Some(20)),
                false,
            ),
            // A poll without a normalized status keeps the status, and creates nothing.
            (
                state(None, None, None),
                (Poll, 40, None, Some("Archived"), None),
                state(None, None, None),
                false,
            ),
            // A poll stamped before the last event (clock skew) only fills a missing name.
            (
                state(out, Some("NDA"), Some(50)),
                (Poll, 40, None, None, Some("Other")),
                state(out, Some("NDA"), Some(50)),
                false,
            ),
        ];
        for (before, (source, at, status, provider_status, name), after, changed) in cases {
            let change = Change {
                source,
                at: t(at),
                status,
                provider_status,
                name,
                confirm_final: false,
            };
            let mut folded = before.clone();
            assert_eq!(folded.apply(&change).changed(), changed, "{before:?} <- {change:?}");
            assert_eq!(folded, after, "{before:?} <- {change:?}");
        }
    }

    /// Statuses and event times do not depend on the delivery order (names
    /// do: an older name only fills a gap, so one name is used here).
    #[test]
    fn folding_events_in_any_order_ends_in_the_same_state() {
        let events = [
            (10, Some(InProgress), Some("OUT_FOR_SIGNATURE"), None),
            (20, Some(InProgress), Some("OUT_FOR_SIGNATURE"), None),
            (30, Some(Completed), Some("SIGNED"), Some("NDA final")),
            (40, Some(InProgress), Some("OUT_FOR_SIGNATURE"), None),
        ];
        let fold = |order: &[usize]| {
            let mut state = AgreementState::default();
            for &i in order {
                let (at, status, provider_status, name) = events[i];
                state.apply(&Change {
                    source: Source::Event,
                    at: t(at),
                    status,
                    provider_status,
                    name,
                    confirm_final: false,
                });
            }
            state
        };
        let expected = fold(&[0, 1, 2, 3]);
        assert_eq!(expected.status, Some(Completed));
        assert_eq!(expected.name.as_deref(), Some("NDA final"));
        assert_eq!(expected.last_event_at, Some(t(40)));
        for order in [[3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2], [0, 2, 1, 3]] {
            assert_eq!(fold(&order), expected, "{order:?}");
        }
    }

    #[test]
    fn only_a_moved_status_is_a_change() {
        let event = |at, status, provider_status, name| Change {
            source: Source::Event,
            at: t(at),
            status,
            provider_status,
            name,
            confirm_final: false,
        };
        let mut state = AgreementState::default();
        // (change, changed, previous when it is a change)
        let steps = [
            (
                event(10, Some(InProgress), Some("OUT_FOR_SIGNATURE"), Some("NDA")),
                true,
                Some((None, None)),
            ),
            // Same statuses, a rename and a later time: not a change.
            (
                event(11, Some(InProgress), Some("OUT_FOR_SIGNATURE"), Some("NDA v2")),
                true,
                None,
            ),
            // The provider's status moves within in_progress: a change.
            (
                event(12, Some(InProgress), Some("WAITING_FOR_MY_SIGNATURE"), None),
                true,
                Some((Some(InProgress), Some("OUT_FOR_SIGNATURE"))),
            ),
            (
                event(20, Some(Completed), Some("SIGNED"), None),
                true,
                Some((Some(InProgress), Some("WAITING_FOR_MY_SIGNATURE"))),
            ),
            // A duplicate and a late event: nothing.
            (event(20, Some(Completed), Some("SIGNED"), None), false, None),
            (
                event(15, Some(InProgress), Some("OUT_FOR_SIGNATURE"), None),
                false,
                None,
            ),
        ];
        for (change, changed, previous) in steps {
            let expected =
                previous.map(
                    |(status, provider_status): (Option<AgreementStatus>, Option<&str>)| Previous {
                        status,
                        provider_status: provider_status.map(str::to_owned),
                    },
                );
            let (folded, previous) = state.apply_tracked(&change);
            assert_eq!((folded.changed(), previous), (changed, expected), "{change:?}");
        }
    }

    #[test]
    fn events_dated_past_the_skew_are_ordered_at_their_receipt() {
        let skew = Duration::minutes(5);
        let received = t(0);
        let far_future = DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        // (stated, ordered at, clamped)
        let cases = [
            (None, t(0), false),
            (Some(t(-3600)), t(-3600), false),
            (Some(t(300)), t(300), false),
            (Some(t(301)), t(0), true),
            (Some(far_future), t(0), true),
        ];
        for (stated, at, clamped) in cases {
            assert_eq!(
                ordering_time(stated, received, skew),
                OrderedAt { at, clamped },
                "{stated:?}"
            );
        }
    }

    /// A forged far-future recall, ordered at its receipt, no longer outranks
    /// the genuine completion that follows it.
    #[test]
    fn a_forged_far_future_final_does_not_freeze_the_agreement() {
        let skew = Duration::minutes(5);
        let far_future = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .expect("valid")
            .with_timezone(&Utc);
        let mut state = AgreementState::default();
        let event = |at: DateTime<Utc>, status, provider_status| Change {
            source: Source::Event,
            at,
            status: Some(status),
            provider_status: Some(provider_status),
            name: None,
            confirm_final: false,
        };
        let forged = ordering_time(Some(far_future), t(10), skew);
        state.apply(&event(forged.at, Cancelled, "AGREEMENT_RECALLED"));
        let genuine = ordering_time(Some(t(20)), t(21), skew);
        assert!(!genuine.clamped);
        state.apply(&event(genuine.at, Completed, "SIGNED"));
        assert_eq!(state.status, Some(Completed));
        assert_eq!(state.last_event_at, Some(t(20)));
    }

    #[test]
    fn finals_to_confirm_are_held_and_other_changes_go_through() {
        let change = |status, confirm_final| Change {
            source: Source::Event,
            at: t(20),
            status: Some(status),
            provider_status: Some("X"),
            name: Some("NDA"),
            confirm_final,
        };
        let open = state(Some((InProgress, 10, "OUT_FOR_SIGNATURE")), None, Some(10));
        // A final status to confirm: held, but the event's time and name count.
        let mut held = open.clone();
        assert_eq!(held.apply(&change(Cancelled, true)), Folded::Held);
        assert_eq!(held.status, Some(InProgress));
        assert_eq!(held.provider_status.as_deref(), Some("OUT_FOR_SIGNATURE"));
        assert!(held.confirm_pending);
        assert_eq!((held.last_event_at, held.name.as_deref()), (Some(t(20)), Some("NDA")));
        // Non-final statuses need no confirmation.
        let mut moved = open.clone();
        assert_eq!(moved.apply(&change(InProgress, true)), Folded::Changed);
        assert!(!moved.confirm_pending);
        // Without the flag (strong credentials, or confirmed) it applies.
        let mut applied = open.clone();
        assert_eq!(applied.apply(&change(Cancelled, false)), Folded::Changed);
        assert_eq!(applied.status, Some(Cancelled));
        // A final the rules would not adopt anyway is not held.
        let mut done = state(Some((Completed, 30, "SIGNED")), Some("NDA"), Some(30));
        assert_eq!(done.apply(&change(Cancelled, true)), Folded::Unchanged);
        assert!(!done.confirm_pending);
    }

    #[test]
    fn status_names_round_trip() {
        for status in AgreementStatus::ALL {
            assert_eq!(AgreementStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(AgreementStatus::parse("signed"), None);
    }
}
