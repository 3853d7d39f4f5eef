//! Catching a panic together with its location.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether a panic on this thread happens inside [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Whether the previous hook still runs for such a panic.
    static FORWARD: Cell<bool> = const { Cell::new(false) };
    /// `file:line:column` of the last panic caught on this thread.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Installs the recording hook in front of the current one, once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            LOCATION.with(|slot| *slot.borrow_mut() = location);
            if FORWARD.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// A caught panic.
pub(crate) struct Caught {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

/// Runs `f`, catching a panic with its message and location.
pub(crate) fn catch<R>(forward: bool, f: impl FnOnce() -> R) -> Result<R, Caught> {
    let was_catching = CATCHING.with(|c| c.replace(true));
    let was_forwarding = FORWARD.with(|c| c.replace(forward));
    LOCATION.with(|slot| slot.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was_catching));
    FORWARD.with(|c| c.set(was_forwarding));
    result.map_err(|payload| {
        let message = payload_message(payload.as_ref());
        // The payload's own destructor could panic; never let that escape.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
        Caught {
            message,
            location: LOCATION.with(|slot| slot.borrow_mut().take()),
        }
    })
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic payload of an unknown type".to_owned()
    }
}
