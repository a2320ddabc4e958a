//! A queue of one process's writers of one hot row: the one in front goes
//! to the database, the others wait here instead of on the row's lock or in
//! a retry. Only a performance device; what keeps writes correct is the
//! versioned write behind it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The queue of one row. A sync writer waits on a condition variable, an
/// async one on tokio's mutex; the two kinds do not queue behind each
/// other (the database still orders them).
#[derive(Debug, Default)]
pub struct Flight {
    busy: Mutex<bool>,
    free: Condvar,
    #[cfg(feature = "async")]
    queue: Arc<tokio::sync::Mutex<()>>,
}

/// A writer's place at the front of a [`Flight`]: the next one goes when it
/// is dropped.
#[derive(Debug)]
pub struct Boarded {
    _seat: Seat,
}

#[derive(Debug)]
enum Seat {
    Blocking(Arc<Flight>),
    #[cfg(feature = "async")]
    NonBlocking(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
}

impl Drop for Seat {
    // Without the async API there is one kind of seat.
    #[cfg_attr(not(feature = "async"), allow(irrefutable_let_patterns))]
    fn drop(&mut self) {
        if let Seat::Blocking(flight) = self {
            *flight.busy.lock().unwrap_or_else(PoisonError::into_inner) = false;
            flight.free.notify_one();
        }
    }
}

impl Flight {
    /// Waits (blocking the thread) to be the one writer of this process at
    /// the row; whether another was there first.
    pub(crate) fn board_blocking(flight: &Arc<Flight>) -> (Boarded, bool) {
        let mut busy = flight.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let waited = *busy;
        while *busy {
            busy = flight
                .free
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *busy = true;
        let seat = Seat::Blocking(Arc::clone(flight));
        (Boarded { _seat: seat }, waited)
    }

    /// Waits (yielding to the runtime) to be the one async writer of this
    /// process at the row; whether another was there first.
    #[cfg(feature = "async")]
    pub(crate) async fn board_async(flight: &Arc<Flight>) -> (Boarded, bool) {
        let queue = Arc::clone(&flight.queue);
        let (guard, waited) = match Arc::clone(&queue).try_lock_owned() {
            Ok(guard) => (guard, false),
            Err(_) => (queue.lock_owned().await, true),
        };
        (
            Boarded {
                _seat: Seat::NonBlocking(guard),
            },
            waited,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_at_a_time_and_the_next_one_waited() {
        let flight = Arc::new(Flight::default());
        let inside = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let waits: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (flight, inside) = (Arc::clone(&flight), Arc::clone(&inside));
                    s.spawn(move || {
                        let mut waited = 0;
                        for _ in 0..50 {
                            let (seat, w) = Flight::board_blocking(&flight);
                            waited += u32::from(w);
                            let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(now, 0, "two writers in the flight");
                            std::thread::yield_now();
                            inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            drop(seat);
                        }
                        waited
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!(waits > 0, "four threads never met");
    }
}
