//! Duplicate detection: MessageIds seen by a queue or topic within its
//! DuplicateDetectionHistoryTimeWindow.
//!
//! A send whose MessageId was accepted within the window is acknowledged but not stored
//! (Service Bus semantics), and reports the sequence number of the original. The history lives
//! in memory and is rebuilt at open from the messages still stored, so after a restart the ids
//! of messages already completed are forgotten.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::time::Timestamp;

pub(crate) struct DuplicateDetector {
    window: Duration,
    /// MessageId → (accepted at, sequence number).
    seen: HashMap<String, (Timestamp, i64)>,
    /// Acceptance order, for pruning.
    order: VecDeque<(Timestamp, String)>,
}

impl DuplicateDetector {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The original's sequence number if `message_id` was accepted within the window.
    pub(crate) fn original(&mut self, message_id: &str, now: Timestamp) -> Option<i64> {
        self.prune(now);
        self.seen
            .get(message_id)
            .map(|(_, sequence_number)| *sequence_number)
    }

    /// Remembers an accepted MessageId.
    pub(crate) fn remember(&mut self, message_id: &str, at: Timestamp, sequence_number: i64) {
        self.seen
            .insert(message_id.to_owned(), (at, sequence_number));
        self.order.push_back((at, message_id.to_owned()));
    }

    /// Forgets an id whose send failed, so a retry is not mistaken for a duplicate.
    pub(crate) fn forget(&mut self, message_id: &str, sequence_number: i64) {
        if self
            .seen
            .get(message_id)
            .is_some_and(|(_, s)| *s == sequence_number)
        {
            self.seen.remove(message_id);
        }
    }

    fn prune(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.window) > now {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                // Only drop the entry if it was not re-accepted later.
                if self
                    .seen
                    .get(&id)
                    .is_some_and(|(seen_at, _)| *seen_at == at)
                {
                    self.seen.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_only() {
        let mut detector = DuplicateDetector::new(Duration::from_secs(10));
        let t0 = Timestamp::from_unix_millis(1_000_000);
        detector.remember("a", t0, 1);
        assert_eq!(
            detector.original("a", t0.saturating_add(Duration::from_secs(9))),
            Some(1)
        );
        assert_eq!(detector.original("b", t0), None);
        assert_eq!(
            detector.original("a", t0.saturating_add(Duration::from_secs(10))),
            None
        );
    }

    #[test]
    fn forget_undoes_a_failed_send() {
        let mut detector = DuplicateDetector::new(Duration::from_secs(10));
        let t0 = Timestamp::from_unix_millis(0);
        detector.remember("a", t0, 7);
        detector.forget("a", 7);
        assert_eq!(detector.original("a", t0), None);
    }
}
