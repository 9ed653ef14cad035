//! Unit tests of the ring on the heap, with the real platform.

use super::*;
use crate::queue::error::{RecvFail, SendFail};
use crate::sync::Os;
use std::sync::Arc;
use std::time::Instant;

type Heap = HeapRing<Os>;

fn heap(cap: u64) -> Arc<Heap> {
    HeapRing::new(cap)
}

fn ring(h: &Heap) -> Ring<'_, Os> {
    h.ring()
}

#[test]
fn spinning_is_skipped_only_for_a_peer_on_this_cpu() {
    assert!(!worth_spinning(3, 3));
    assert!(worth_spinning(3, 4));
    assert!(worth_spinning(0, 4));
    assert!(worth_spinning(3, 0));
    assert_ne!(current_cpu(), 0, "sched_getcpu works here");
    // A ring records where its last sender and receiver ran.
    let h = heap(2);
    let r = ring(&h);
    r.send(1, Wait::No).unwrap();
    r.recv(Wait::No).unwrap();
    assert_ne!(h.hdr.sender_cpu.load(Ordering::Relaxed), 0);
    assert_ne!(h.hdr.receiver_cpu.load(Ordering::Relaxed), 0);
}

#[test]
fn a_ring_side_notes_its_cpu_every_sixteen_items_and_whenever_it_waits() {
    let h = heap(32);
    let r = ring(&h);
    // A receive that waits notes the receiver's CPU, before finding the ring empty.
    let soon = Wait::Until(Os::now_ns() + 1_000_000);
    assert_eq!(r.recv(soon), Err(RecvFail::Timeout));
    assert_ne!(h.hdr.receiver_cpu.load(Ordering::Relaxed), 0);
    // Sends that do not wait note it at positions 0 and 16 only.
    r.send(0, Wait::No).unwrap();
    assert_ne!(h.hdr.sender_cpu.load(Ordering::Relaxed), 0);
    h.hdr.sender_cpu.store(0, Ordering::Relaxed);
    for i in 1..16 {
        r.send(i, Wait::No).unwrap();
    }
    assert_eq!(h.hdr.sender_cpu.load(Ordering::Relaxed), 0);
    r.send(16, Wait::No).unwrap();
    assert_ne!(h.hdr.sender_cpu.load(Ordering::Relaxed), 0);
    // A send that may wait notes it even where no note is due.
    h.hdr.sender_cpu.store(0, Ordering::Relaxed);
    r.send(17, Wait::Forever).unwrap();
    assert_ne!(h.hdr.sender_cpu.load(Ordering::Relaxed), 0);
}

#[test]
fn the_hot_words_share_one_cache_line() {
    use std::mem::offset_of;
    type H = RingHeader<Os>;
    assert_eq!(offset_of!(H, lock), 0);
    assert!(offset_of!(H, poisoned) + 4 <= 64);
    assert!(offset_of!(H, closed) + 4 <= 64);
    assert!(offset_of!(H, tail) + 8 <= 64);
    assert!(offset_of!(H, op) + 8 <= 64);
}

#[test]
fn len_is_a_snapshot_even_while_items_move() {
    // One item at a time passes through a ring of 4: it never holds more than one, so
    // a length read must never say more (reading `head` before `tail` without a retry
    // could say 4 when both moved in between).
    let stop = Arc::new(AtomicU32::new(0));
    let h = heap(4);
    let (h2, stop2) = (h.clone(), stop.clone());
    let mover = std::thread::spawn(move || {
        let r = ring(&h2);
        while stop2.load(Ordering::Relaxed) == 0 {
            r.send(1, Wait::No).unwrap();
            r.recv(Wait::No).unwrap();
        }
    });
    let r = ring(&h);
    for _ in 0..1_000_000 {
        assert!(r.len() <= 1, "len {}", r.len());
    }
    stop.store(1, Ordering::Relaxed);
    mover.join().unwrap();
}

#[test]
fn capacity_must_match_the_slots() {
    let h = heap(2);
    assert_eq!(
        Ring::new(&h.hdr, &h.slots[..1]).unwrap_err(),
        BadRing {
            declared: 2,
            slots: 1
        }
    );
    let z: RingHeader<Os> = RingHeader::new();
    assert!(Ring::new(&z, &[]).is_err());
}

#[test]
fn fifo_full_empty_and_slots_cleared() {
    let h = heap(2);
    let r = ring(&h);
    assert_eq!(r.recv(Wait::No), Err(RecvFail::Empty));
    r.send(10, Wait::No).unwrap();
    r.send(11, Wait::No).unwrap();
    assert_eq!(r.send(12, Wait::No), Err(SendFail::Full(12)));
    assert_eq!(r.len(), 2);
    assert_eq!(r.recv(Wait::No), Ok(10));
    assert!(h.slots.iter().any(|s| s.load(Ordering::Relaxed) == 0));
    r.send(12, Wait::No).unwrap();
    assert_eq!(r.recv(Wait::Forever), Ok(11));
    assert_eq!(r.recv(Wait::Forever), Ok(12));
    assert!(h.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    let s = r.stats();
    assert_eq!((s.enqueued, s.dequeued, s.len), (3, 3, 0));
}

#[test]
fn recv_many_takes_up_to_max_in_order() {
    let h = heap(4);
    let r = ring(&h);
    let mut got = vec![];
    assert_eq!(
        r.recv_many(Wait::No, 3, |i| got.push(i)),
        Err(RecvFail::Empty)
    );
    assert_eq!(r.recv_many(Wait::No, 0, |i| got.push(i)), Ok(0));
    for i in 1..=4 {
        r.send(i, Wait::No).unwrap();
    }
    assert_eq!(r.recv_many(Wait::No, 3, |i| got.push(i)), Ok(3));
    assert_eq!(got, [1, 2, 3]);
    // The freed slots take new items, in order after the one left.
    r.send(5, Wait::No).unwrap();
    assert_eq!(r.recv_many(Wait::Forever, 10, |i| got.push(i)), Ok(2));
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert!(h.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    r.close();
    assert_eq!(
        r.recv_many(Wait::Forever, 2, |i| got.push(i)),
        Err(RecvFail::Closed)
    );
    let s = r.stats();
    assert_eq!((s.enqueued, s.dequeued), (5, 5));
}

#[test]
fn lock_owner_names_the_holding_thread() {
    let h = heap(2);
    let r = ring(&h);
    assert_eq!(r.lock_owner(), None);
    let g = h.hdr.lock.lock();
    assert_eq!(r.lock_owner(), Some(Os::current()));
    drop(g);
    assert_eq!(r.lock_owner(), None);
}

#[test]
fn polling_an_empty_ring_leaves_the_lock_alone() {
    let h = heap(2);
    let r = ring(&h);
    // Taking the lock while holding it would panic: the poll must not try.
    let g = h.hdr.lock.lock();
    assert_eq!(r.recv(Wait::No), Err(RecvFail::Empty));
    drop(g);
    r.send(3, Wait::No).unwrap();
    assert_eq!(r.recv(Wait::No), Ok(3));
    r.close();
    assert_eq!(r.recv(Wait::No), Err(RecvFail::Closed));
}

#[test]
fn timeouts_give_the_item_back_and_bound_the_wait() {
    let h = heap(1);
    let r = ring(&h);
    r.send(1, Wait::No).unwrap();
    let t = Instant::now();
    assert_eq!(
        r.send(2, Wait::after::<Os>(Duration::from_millis(30))),
        Err(SendFail::Timeout(2))
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    r.recv(Wait::No).unwrap();
    assert_eq!(
        r.recv(Wait::after::<Os>(Duration::from_millis(30))),
        Err(RecvFail::Timeout)
    );
    assert_eq!(r.stats().timeouts, 2);
}

#[test]
fn close_wakes_blocked_receivers_after_the_drain() {
    let h = heap(4);
    let r = ring(&h);
    r.send(5, Wait::No).unwrap();
    let h2 = h.clone();
    let t = std::thread::spawn(move || {
        let r = ring(&h2);
        let mut got = vec![];
        loop {
            match r.recv(Wait::Forever) {
                Ok(v) => got.push(v),
                Err(e) => return (got, e),
            }
        }
    });
    // Close once the receiver has taken the item and sleeps waiting for the next.
    let t0 = Instant::now();
    while !(r.stats().dequeued == 1 && r.stats().receivers_waiting == 1) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the receiver never slept"
        );
        std::thread::yield_now();
    }
    r.close();
    assert_eq!(r.send(6, Wait::Forever), Err(SendFail::Closed(6)));
    assert_eq!(t.join().unwrap(), (vec![5], RecvFail::Closed));
}

#[test]
fn threads_deliver_each_item_once_in_order() {
    let h = heap(3);
    const N: u64 = 20_000;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let h = h.clone();
            std::thread::spawn(move || {
                let r = ring(&h);
                for i in 1..=N {
                    r.send(p << 32 | i, Wait::Forever).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                let r = ring(&h);
                let mut last = [0u64; 2];
                let mut n = 0u64;
                while let Ok(v) = r.recv(Wait::Forever) {
                    let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                    assert!(i > last[p], "out of order");
                    last[p] = i;
                    n += 1;
                }
                n
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    ring(&h).close();
    let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 2 * N);
}
