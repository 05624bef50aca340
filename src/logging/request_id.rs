//! The id of the request whose handler runs on this thread now, so that
//! the lines its handler logs carry `request_id` as its access line does,
//! and the handler can read it (`api::extract::RequestId`).
//!
//! A thread-local set around each poll of the handler, not a `tracing`
//! span: a span per request cost more than the rest of its logging
//! (`access.rs`). A task the handler spawns runs elsewhere, without it:
//! pass the id along.

use std::cell::Cell;

use axum::http::HeaderValue;

thread_local! {
    static CURRENT: Cell<Option<HeaderValue>> = const { Cell::new(None) };
}

/// Runs `poll` with `id` current. The id is moved in and back out, not
/// cloned: this runs at every poll of every request.
pub fn scope<R>(id: &mut HeaderValue, poll: impl FnOnce() -> R) -> R {
    /// Puts the id back, even if `poll` panics.
    struct Restore<'a> {
        id: &'a mut HeaderValue,
        previous: Option<HeaderValue>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(current) = CURRENT.replace(self.previous.take()) {
                *self.id = current;
            }
        }
    }
    let current = std::mem::replace(id, HeaderValue::from_static(""));
    let previous = CURRENT.replace(Some(current));
    let _restore = Restore { id, previous };
    poll()
}

/// `with` the current request's id, if a handler is being polled.
pub fn with_current<R>(with: impl FnOnce(Option<&HeaderValue>) -> R) -> R {
    let current = CURRENT.take();
    let result = with(current.as_ref());
    CURRENT.set(current);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_current_inside_the_scope_and_back_in_place_after() {
        let mut id = HeaderValue::from_static("abc-1");
        let inside = scope(&mut id, || with_current(|current| current.cloned()));
        assert_eq!(inside, Some(HeaderValue::from_static("abc-1")));
        assert_eq!(id, "abc-1");
        assert_eq!(with_current(|current| current.cloned()), None);
    }
}
