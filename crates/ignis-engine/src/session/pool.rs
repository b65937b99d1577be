//! The per-thread pool of buffers that fell empty: the queues and outputs of every connection,
//! and the text of messages written in place, are taken from it and given back, so that an idle
//! connection keeps none.

use std::collections::VecDeque;

/// Buffers that fell empty, kept per thread for the next one that needs a buffer of their kind.
///
/// The queue of every message to a connection goes through one: the senders' queue, then the
/// WebSocket task's output; and so does the text of every message a handler sends to one
/// session ([`TextMessage::buffer`]). A connection keeps none of them once idle (idle memory per
/// connection is what bounds how many the server holds), and allocating each anew for every
/// message costs an allocation and a free apiece; a few buffers per thread serve every
/// connection instead.
///
/// [`TextMessage::buffer`]: crate::session::TextMessage::buffer
pub(crate) struct Spares<B>(std::cell::RefCell<Vec<B>>);

/// How many buffers a thread keeps per kind: more come from bursts, which allocate anyway.
const SPARES: usize = 4;

/// A buffer [`Spares`] can keep.
pub(crate) trait Reusable: Default {
    /// The largest capacity worth keeping: larger buffers come from rare large messages.
    const MAX_KEPT: usize;
    fn capacity(&self) -> usize;
    /// Readies the buffer for its next user, before it is kept.
    fn reset(&mut self);
}

impl<T> Reusable for VecDeque<T> {
    const MAX_KEPT: usize = 64;
    fn capacity(&self) -> usize {
        VecDeque::capacity(self)
    }
    fn reset(&mut self) {
        // Most queues come back empty: `clear` would still walk their (empty) contents.
        if !self.is_empty() {
            self.clear();
        }
    }
}

impl Reusable for Vec<u8> {
    const MAX_KEPT: usize = 2048;
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn reset(&mut self) {
        // Bytes have nothing to drop: the next user sets the length it needs (see
        // `TextMessage::buffer`).
    }
}

impl<B> Spares<B> {
    pub(crate) const fn new() -> Spares<B> {
        Spares(std::cell::RefCell::new(Vec::new()))
    }
}

/// Spare buffers of one kind, per thread.
pub(crate) type SpareKey<B> = std::thread::LocalKey<Spares<B>>;

pub(crate) trait SpareBuffers<B> {
    /// An empty buffer, allocated if the thread has one to spare.
    fn take(&'static self) -> B;
    /// Keeps `buf`'s allocation for later, if it is small and the thread does not have enough.
    fn give(&'static self, buf: B);
}

impl<B: Reusable> SpareBuffers<B> for SpareKey<B> {
    #[inline]
    fn take(&'static self) -> B {
        self.try_with(|spares| spares.0.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    #[inline]
    fn give(&'static self, mut buf: B) {
        let capacity = buf.capacity();
        if capacity == 0 {
            forget_unallocated(buf);
            return;
        }
        if capacity > B::MAX_KEPT {
            return;
        }
        buf.reset();
        let _ = self.try_with(move |spares| {
            if let Ok(mut spares) = spares.0.try_borrow_mut()
                && spares.len() < SPARES
            {
                spares.push(buf);
            }
        });
    }
}

/// Lets go of a buffer that holds no allocation. Dropping it would free nothing, but a queue's
/// destructor is an out-of-line call that walks its (empty) contents, which costs more than the
/// rest of taking or giving a spare buffer.
#[inline]
fn forget_unallocated<B: Reusable>(buf: B) {
    debug_assert_eq!(buf.capacity(), 0);
    std::mem::forget(buf);
}

/// Puts `new` in `slot`, which holds no allocation (see [`forget_unallocated`]).
#[inline]
pub(crate) fn replace_unallocated<B: Reusable>(slot: &mut B, new: B) {
    forget_unallocated(std::mem::replace(slot, new));
}
