//! The time limit of one run, enforced through QuickJS's interrupt handler.
//!
//! QuickJS calls the handler every ten thousand or so polls (function calls, loop back
//! edges, regexp steps), and an interrupt raises an exception the script cannot catch.
//! Once the watchdog has fired it keeps firing, so code that runs after an interrupt
//! (a `finally`, a pending job, a `toJSON` during output) is stopped too.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::runtime::InterruptHandler;

/// Interrupt polls allowed per millisecond of the time limit: a second bound that does not
/// depend on the clock. QuickJS polls the handler once per ~10 000 interpreter polls, and
/// even a tight loop does not get near 1 000 handler calls per millisecond, so this only
/// ever trips if the clock misbehaves.
const HANDLER_CALLS_PER_MS: u64 = 1_000;

pub(super) struct Watchdog {
    deadline: Option<Instant>,
    calls_left: Cell<u64>,
    fired: Cell<bool>,
}

impl Watchdog {
    /// Starts the clock now.
    pub(super) fn start(time: Duration) -> Rc<Self> {
        let millis = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
        Rc::new(Self {
            deadline: Instant::now().checked_add(time),
            calls_left: Cell::new(millis.saturating_mul(HANDLER_CALLS_PER_MS).max(1)),
            fired: Cell::new(false),
        })
    }

    /// Whether the run was interrupted for running out of time.
    pub(super) fn fired(&self) -> bool {
        self.fired.get()
    }

    /// The handler to install on the runtime.
    pub(super) fn interrupt_handler(self: &Rc<Self>) -> InterruptHandler {
        let watchdog = Rc::clone(self);
        Box::new(move || watchdog.should_interrupt())
    }

    fn should_interrupt(&self) -> bool {
        if !self.fired.get() {
            let calls_left = self.calls_left.get().saturating_sub(1);
            self.calls_left.set(calls_left);
            let past_deadline = self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
            self.fired.set(past_deadline || calls_left == 0);
        }
        self.fired.get()
    }
}
