//! Catching a panic together with its location.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Not inside [`catch`]: the previous hook handles the panic.
const OUTSIDE: u8 = 0;
/// Inside [`catch`]: record the location only.
const RECORD: u8 = 1;
/// Inside [`catch`]: record the location and call the previous hook too.
const RECORD_AND_FORWARD: u8 = 2;

thread_local! {
    /// What the hook does for a panic on this thread (one cell: one TLS access per catch).
    static MODE: Cell<u8> = const { Cell::new(OUTSIDE) };
    /// `file:line:column` of the last panic caught on this thread.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Installs the recording hook in front of the current one, once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let mode = MODE.with(Cell::get);
            if mode == OUTSIDE {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            LOCATION.with(|slot| *slot.borrow_mut() = location);
            if mode == RECORD_AND_FORWARD {
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
    let mode = if forward { RECORD_AND_FORWARD } else { RECORD };
    let previous_mode = MODE.with(|m| m.replace(mode));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    MODE.with(|m| m.set(previous_mode));
    // LOCATION is taken when read, so it only ever holds the location of the panic just
    // caught (or nothing, when a hook installed after ours replaced it).
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
