//! Reused strings for spans' fields: a span's string goes back to its thread's pool when the
//! span closes, so a span per call costs no string allocation once the pool has filled.

use std::cell::RefCell;

/// Room for a typical span's fields, so a new string is allocated once.
const CAPACITY: usize = 256;
/// Strings kept per thread: more than the spans a thread closes before it opens as many.
const POOLED: usize = 64;
/// A string that grew past this (a span with huge fields) is not kept.
const KEEP: usize = 4 * 1024;

thread_local! {
    static POOL: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// An empty string with room for a span's fields.
pub(super) fn take() -> String {
    POOL.try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut pool| pool.pop()))
        .ok()
        .flatten()
        .unwrap_or_else(|| String::with_capacity(CAPACITY))
}

/// Gives back the string of a closed span.
pub(super) fn give(mut fields: String) {
    if fields.capacity() > KEEP {
        return;
    }
    fields.clear();
    let _ = POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut()
            && pool.len() < POOLED
        {
            if pool.capacity() == 0 {
                pool.reserve_exact(POOLED);
            }
            pool.push(fields);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_string_is_taken_again_empty_and_a_huge_one_is_dropped() {
        let mut first = take();
        first.push_str("\"a\":1");
        let pointer = first.as_ptr();
        give(first);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), pointer, "the same buffer, reused");

        // Not kept: the next string is a new one of the usual room. (Its address says
        // nothing: the allocator may hand the freed huge buffer's memory out again.)
        give(String::with_capacity(KEEP + 1));
        let next = take();
        assert_eq!(next.capacity(), CAPACITY);
    }
}
