//! Instrumentation behind the `tracing` cargo feature: events for spawn, poll, wake, park
//! and socket open/close, at `trace` level (sockets at `debug`). Without the feature the
//! macros expand to nothing, so the hot paths pay nothing.

/// A `trace!` event under the `tracing` feature; nothing otherwise.
macro_rules! trace_event {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        ::tracing::trace!($($arg)*);
    };
}

/// A `debug!` event under the `tracing` feature; nothing otherwise.
macro_rules! debug_event {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        ::tracing::debug!($($arg)*);
    };
}

pub(crate) use {debug_event, trace_event};
