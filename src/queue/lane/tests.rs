//! Unit tests of the lane on the heap, with the real platform, and its state machine
//! against a model.

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::sync::Os;

type Heap = HeapLane<Os>;

fn heap(cap: u64) -> Arc<Heap> {
    HeapLane::new(cap)
}

fn lane(h: &Heap) -> Lane<'_, Os> {
    h.lane()
}

fn after_ms(ms: u64) -> Wait {
    Wait::Until(Os::now_ns().saturating_add(ms * 1_000_000))
}

#[test]
fn the_two_sides_the_rare_words_and_the_roles_sit_on_lines_of_their_own() {
    use std::mem::{align_of, offset_of, size_of};
    type H = LaneHeader<Os>;
    assert_eq!(offset_of!(H, sender), 0);
    assert_eq!(offset_of!(H, receiver), 64);
    assert_eq!(offset_of!(H, rare), 128);
    assert_eq!(offset_of!(H, roles), 192);
    assert_eq!(size_of::<H>(), 256);
    assert_eq!(align_of::<H>(), 64);
    assert_eq!(size_of::<LaneSlot>(), 16);
}

#[test]
fn items_come_out_in_order_over_many_rounds() {
    let h = heap(3);
    let l = lane(&h);
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    for round in 0..200u64 {
        // Fill by 1..=3, drain by a batch of up to 2 and singles.
        for _ in 0..=(round % 3) {
            l.send(next_in, Wait::No, None).unwrap();
            next_in += 1;
        }
        let mut got = Vec::new();
        l.recv_many(Wait::No, 2, |v| got.push(v), None).unwrap();
        while let Ok(v) = l.recv(Wait::No, None) {
            got.push(v);
        }
        for v in got {
            assert_eq!(v, next_out);
            next_out += 1;
        }
    }
    assert_eq!(next_out, next_in);
    assert_eq!(l.counts(), (next_in, next_out));
    assert_eq!(l.len(), 0);
}

#[test]
fn a_full_lane_and_an_empty_one_answer_at_once() {
    let h = heap(2);
    let l = lane(&h);
    assert_eq!(l.recv(Wait::No, None), Err(RecvFail::Empty));
    l.send(1, Wait::No, None).unwrap();
    l.send(2, Wait::No, None).unwrap();
    assert_eq!(l.send(3, Wait::No, None), Err(SendFail::Full(3)));
    assert_eq!(l.len(), 2);
}

#[test]
fn timed_waits_end_at_their_deadline() {
    let h = heap(1);
    let l = lane(&h);
    assert_eq!(l.recv(after_ms(5), None), Err(RecvFail::Timeout));
    l.send(1, Wait::No, None).unwrap();
    assert_eq!(l.send(2, after_ms(5), None), Err(SendFail::Timeout(2)));
    assert_eq!(l.recv(Wait::No, None), Ok(1));
}

#[test]
fn a_closed_lane_refuses_sends_and_drains_then_says_closed() {
    let h = heap(2);
    let l = lane(&h);
    l.send(1, Wait::No, None).unwrap();
    l.close();
    assert!(l.is_closed());
    assert_eq!(l.send(2, Wait::No, None), Err(SendFail::Closed(2)));
    assert_eq!(l.recv(Wait::Forever, None), Ok(1));
    assert_eq!(l.recv(Wait::Forever, None), Err(RecvFail::Closed));
}

#[test]
fn close_wakes_a_receiver_asleep_on_an_empty_lane() {
    let h = heap(1);
    let h2 = h.clone();
    let t = std::thread::spawn(move || lane(&h2).recv(Wait::Forever, None));
    // Wait until it sleeps: its flag is up.
    while h.hdr.rare.receiver_sleeps.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    lane(&h).close();
    assert_eq!(t.join().unwrap(), Err(RecvFail::Closed));
}

/// Two threads hand `n` items over, both waiting without bound; each arrives once, in
/// order.
fn hand_over(cap: u64, n: u64, batch: usize) {
    let h = heap(cap);
    let h2 = h.clone();
    let sender = std::thread::spawn(move || {
        let l = lane(&h2);
        for i in 0..n {
            l.send(i + 1, Wait::Forever, None).unwrap();
        }
    });
    let l = lane(&h);
    let mut expect = 1;
    while expect <= n {
        l.recv_many(
            Wait::Forever,
            batch,
            |v| {
                assert_eq!(v, expect);
                expect += 1;
            },
            None,
        )
        .unwrap();
    }
    sender.join().unwrap();
    assert_eq!(l.counts(), (n, n));
}

#[test]
fn two_threads_hand_over_through_one_slot() {
    hand_over(1, 50_000, 1);
}

#[test]
fn two_threads_hand_over_through_two_slots() {
    hand_over(2, 50_000, 2);
}

#[test]
fn two_threads_hand_over_in_batches() {
    hand_over(64, 200_000, 16);
}

#[test]
fn a_stamp_no_store_of_ours_leaves_poisons_the_lane() {
    let h = heap(2);
    let l = lane(&h);
    l.send(1, Wait::No, None).unwrap();
    h.slots[0].stamp.store(77, Ordering::Relaxed);
    assert_eq!(l.recv(Wait::No, None), Err(RecvFail::Corrupted));
    assert_eq!(l.send(2, Wait::No, None), Err(SendFail::Corrupted(2)));
}

#[test]
fn a_sender_dead_between_its_commit_and_its_count_is_completed() {
    let h = heap(2);
    let l = lane(&h);
    l.send(5, Wait::No, None).unwrap();
    // As a sender killed after the stamp, before the count, leaves it.
    h.hdr.sender.count.store(0, Ordering::Relaxed);
    l.recover_sender(None);
    assert_eq!(l.counts(), (1, 0));
    l.send(6, Wait::No, None).unwrap();
    assert_eq!(l.recv(Wait::No, None), Ok(5));
    assert_eq!(l.recv(Wait::No, None), Ok(6));
    // Received already when the recovery looks: the count follows too.
    l.send(7, Wait::No, None).unwrap();
    assert_eq!(l.recv(Wait::No, None), Ok(7));
    h.hdr.sender.count.store(2, Ordering::Relaxed);
    l.recover_sender(None);
    assert_eq!(l.counts(), (3, 3));
    // A sender that died before its commit leaves the count where it was.
    l.recover_sender(None);
    assert_eq!(l.counts(), (3, 3));
}

#[test]
fn a_receiver_dead_between_its_commit_and_its_stamps_is_completed() {
    let h = heap(1);
    let l = lane(&h);
    l.send(5, Wait::No, None).unwrap();
    assert_eq!(l.recv(Wait::No, None), Ok(5));
    // As a receiver killed after the count, before the empty stamp, leaves it.
    h.slots[0].stamp.store(1, Ordering::Relaxed);
    assert_eq!(l.send(6, Wait::No, None), Err(SendFail::Full(6)));
    l.recover_receiver(None);
    l.send(6, Wait::No, None).unwrap();
    assert_eq!(l.recv(Wait::No, None), Ok(6));
}

#[derive(Clone, Debug)]
enum Op {
    Send(u64),
    Recv(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Send),
        4 => (0usize..5).prop_map(Op::Recv),
        1 => Just(Op::Close),
    ]
}

proptest! {
    /// Every answer of a lane driven by one thread matches a bounded FIFO model with a
    /// closed flag.
    #[test]
    fn the_lane_behaves_as_a_bounded_fifo(cap in 1u64..6, ops in prop::collection::vec(op(), 0..80)) {
        let h = heap(cap);
        let l = lane(&h);
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut closed = false;
        for op in ops {
            match op {
                Op::Send(v) => {
                    let want = if closed {
                        Err(SendFail::Closed(v))
                    } else if model.len() as u64 == cap {
                        Err(SendFail::Full(v))
                    } else {
                        model.push_back(v);
                        Ok(())
                    };
                    prop_assert_eq!(l.send(v, Wait::No, None), want);
                }
                Op::Recv(max) => {
                    let mut got = Vec::new();
                    let r = l.recv_many(Wait::No, max, |v| got.push(v), None);
                    let take = max.min(model.len());
                    let want: Vec<u64> = model.drain(..take).collect();
                    let expect = if max == 0 {
                        Ok(0)
                    } else if !want.is_empty() {
                        Ok(want.len())
                    } else if closed {
                        Err(RecvFail::Closed)
                    } else {
                        Err(RecvFail::Empty)
                    };
                    prop_assert_eq!(r, expect);
                    prop_assert_eq!(got, want);
                }
                Op::Close => {
                    l.close();
                    closed = true;
                }
            }
            prop_assert_eq!(l.len(), model.len() as u64);
        }
    }
}

#[test]
fn a_side_notes_its_cpu_every_sixteen_items_and_whenever_it_waits() {
    use crate::queue::ring::current_cpu;
    assert_ne!(current_cpu(), 0, "sched_getcpu works here");
    let h = heap(64);
    let l = lane(&h);
    let rare = &h.hdr.rare;
    // A receive that waits notes the receiver's CPU before its wait.
    assert_eq!(l.recv(after_ms(1), None), Err(RecvFail::Timeout));
    assert_ne!(rare.receiver_cpu.load(Ordering::Relaxed), 0);
    // The first send notes the sender's CPU; the fifteen after it do not look.
    l.send(1, Wait::No, None).unwrap();
    assert_ne!(rare.sender_cpu.load(Ordering::Relaxed), 0);
    rare.sender_cpu.store(0, Ordering::Relaxed);
    for i in 2..=16 {
        l.send(i, Wait::No, None).unwrap();
    }
    assert_eq!(rare.sender_cpu.load(Ordering::Relaxed), 0);
    l.send(17, Wait::No, None).unwrap();
    assert_ne!(rare.sender_cpu.load(Ordering::Relaxed), 0);
    // Receiving position 0 notes it; a batch notes it if it passes a multiple of 16.
    rare.receiver_cpu.store(0, Ordering::Relaxed);
    assert_eq!(l.recv(Wait::No, None), Ok(1));
    assert_ne!(rare.receiver_cpu.load(Ordering::Relaxed), 0);
    rare.receiver_cpu.store(0, Ordering::Relaxed);
    assert_eq!(l.recv_many(Wait::No, 10, |_| {}, None), Ok(10));
    assert_eq!(rare.receiver_cpu.load(Ordering::Relaxed), 0);
    assert_eq!(l.recv_many(Wait::No, 10, |_| {}, None), Ok(6));
    assert_ne!(rare.receiver_cpu.load(Ordering::Relaxed), 0);
}

#[test]
fn the_cpu_note_falls_on_one_item_of_every_sixteen() {
    assert!(cpu_note_due(0, 1));
    assert!(!cpu_note_due(1, 15));
    assert!(cpu_note_due(1, 16));
    assert!(cpu_note_due(15, 2));
    assert!(!cpu_note_due(17, 3));
    assert!(cpu_note_due(u64::MAX, 2), "the count wraps to 0");
    let due = (0..160).filter(|&p| cpu_note_due(p, 1)).count();
    assert_eq!(due, 10);
}
