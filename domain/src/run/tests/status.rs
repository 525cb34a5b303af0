use crate::DomainError;
use crate::run::{RunError, RunStatus, StepStatus};

const LEGAL_RUN_MOVES: [(RunStatus, RunStatus); 5] = [
    (RunStatus::Queued, RunStatus::Running),
    (RunStatus::Queued, RunStatus::Cancelled),
    (RunStatus::Running, RunStatus::Succeeded),
    (RunStatus::Running, RunStatus::Failed),
    (RunStatus::Running, RunStatus::Cancelled),
];

const LEGAL_STEP_MOVES: [(StepStatus, StepStatus); 7] = [
    (StepStatus::Pending, StepStatus::Running),
    (StepStatus::Pending, StepStatus::Skipped),
    (StepStatus::Running, StepStatus::Succeeded),
    (StepStatus::Running, StepStatus::Failed),
    (StepStatus::Running, StepStatus::Retrying),
    (StepStatus::Retrying, StepStatus::Running),
    (StepStatus::Retrying, StepStatus::Failed),
];

#[test]
fn every_run_move_is_legal_exactly_when_listed() {
    for from in RunStatus::ALL {
        for to in RunStatus::ALL {
            let legal = LEGAL_RUN_MOVES.contains(&(from, to));
            let expected = if legal {
                Ok(to)
            } else {
                Err(RunError::IllegalRunTransition { from, to })
            };
            assert_eq!(from.transition(to), expected, "{from} -> {to}");
            assert_eq!(from.can_become(to), legal, "{from} -> {to}");
        }
    }
}

#[test]
fn every_step_move_is_legal_exactly_when_listed() {
    for from in StepStatus::ALL {
        for to in StepStatus::ALL {
            let legal = LEGAL_STEP_MOVES.contains(&(from, to));
            let expected = if legal {
                Ok(to)
            } else {
                Err(RunError::IllegalStepTransition { from, to })
            };
            assert_eq!(from.transition(to), expected, "{from} -> {to}");
        }
    }
}

#[test]
fn terminal_statuses_are_those_with_no_way_out() {
    for status in RunStatus::ALL {
        let has_exit = RunStatus::ALL
            .into_iter()
            .any(|next| status.can_become(next));
        assert_eq!(status.is_terminal(), !has_exit, "{status}");
    }
    for status in StepStatus::ALL {
        let has_exit = StepStatus::ALL
            .into_iter()
            .any(|next| status.can_become(next));
        assert_eq!(status.is_terminal(), !has_exit, "{status}");
    }
    assert!(RunStatus::Cancelled.is_terminal());
    assert!(StepStatus::Skipped.is_terminal());
    assert!(!StepStatus::Retrying.is_terminal());
}

#[test]
fn statuses_are_stored_as_upper_snake_names() {
    let run_names: Vec<&str> = RunStatus::ALL.map(RunStatus::as_str).to_vec();
    assert_eq!(
        run_names,
        ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    );
    let step_names: Vec<&str> = StepStatus::ALL.map(StepStatus::as_str).to_vec();
    assert_eq!(
        step_names,
        [
            "PENDING",
            "RUNNING",
            "RETRYING",
            "SUCCEEDED",
            "FAILED",
            "SKIPPED"
        ]
    );
    for status in RunStatus::ALL {
        assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
    }
    for status in StepStatus::ALL {
        assert_eq!(StepStatus::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
    }
}

#[test]
fn names_that_are_not_statuses_are_refused() {
    for name in ["", "running", "Running", " RUNNING", "DONE", "RETRYING"] {
        assert_eq!(RunStatus::parse(name), None, "{name:?}");
    }
    for name in ["", "skipped", "QUEUED", "CANCELLED", "WAITING"] {
        assert_eq!(StepStatus::parse(name), None, "{name:?}");
    }
}

#[test]
fn a_refused_move_is_a_conflict_for_the_caller() {
    let error = RunStatus::Succeeded
        .transition(RunStatus::Cancelled)
        .expect_err("a finished run cannot be cancelled");
    assert_eq!(
        error.to_string(),
        "a run that is SUCCEEDED cannot become CANCELLED"
    );
    assert!(matches!(
        DomainError::from(error),
        DomainError::Conflict(message) if message.contains("SUCCEEDED")
    ));
}
