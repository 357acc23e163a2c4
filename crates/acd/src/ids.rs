//! Identifier newtypes. They are strings because the shell already has
//! strings for all three (the SIP username of an agent, the Call-ID or CDR id
//! of a call, the `[queues.<name>]` key of a queue) and the ACD never needs
//! arithmetic on them — only equality and a stable order for determinism.
//! They hold an `Arc<str>`: the engine copies ids into indexes, timers and
//! every output, and a clone is then a reference-count increment instead of
//! a string allocation. Equality, order, hashing and `Debug` are the
//! string's.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                Self(Arc::from(s.into()))
            }

            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<&$name> for $name {
            fn from(s: &$name) -> Self {
                s.clone()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// An agent: its SIP username in `ringback.toml`.
    AgentId
);
string_id!(
    /// One caller's call (or callback) while the ACD knows it. Must be unique
    /// among calls that are waiting or connected; it may be reused for a
    /// re-entry after the call left the queue.
    CallId
);
string_id!(
    /// A queue, by its configured name.
    QueueName
);
