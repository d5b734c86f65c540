//! What a task's status means: the one definition of "still to do" and
//! "overdue" that the inbox, the account page, the API, the CLI and the
//! plays report share (the store's SQL counts follow the same rule).

use crate::Date;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// To do.
    Open,
    /// To do, put off until a day.
    Snoozed,
    /// Done, with an outcome.
    Done,
    /// No longer needed (its run ended).
    Cancelled,
}

impl TaskStatus {
    /// Every status, as stored.
    pub const ALL: [TaskStatus; 4] = [Self::Open, Self::Snoozed, Self::Done, Self::Cancelled];

    /// Reads a stored status (`open`, `snoozed`, `done`, `cancelled`).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Snoozed => "snoozed",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    /// Still to do: open or snoozed.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Open | Self::Snoozed)
    }

    /// Overdue on `as_of`: still to do, and due before that day.
    pub fn is_overdue(self, due: Date, as_of: Date) -> bool {
        self.is_pending() && due < as_of
    }
}

/// Whether a task with the stored `status` due on `due` is overdue on
/// `as_of` (an unknown status is not).
pub fn task_is_overdue(status: &str, due: Date, as_of: Date) -> bool {
    TaskStatus::parse(status).is_some_and(|s| s.is_overdue(due, as_of))
}

#[cfg(test)]
mod tests {
    use super::{TaskStatus, task_is_overdue};

    #[test]
    fn only_pending_tasks_due_before_the_day_are_overdue() {
        let d = |s: &str| crate::parse_date(s).unwrap();
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert!(task_is_overdue("open", d("2026-02-01"), d("2026-02-02")));
        assert!(task_is_overdue("snoozed", d("2026-02-01"), d("2026-02-02")));
        assert!(!task_is_overdue("open", d("2026-02-02"), d("2026-02-02")), "due today is not late");
        assert!(!task_is_overdue("done", d("2026-02-01"), d("2026-02-02")));
        assert!(!task_is_overdue("cancelled", d("2026-02-01"), d("2026-02-02")));
        assert!(!task_is_overdue("later", d("2026-02-01"), d("2026-02-02")));
    }
}
