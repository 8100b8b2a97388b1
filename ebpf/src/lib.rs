//! Kernel programs and the event types shared with userspace.
