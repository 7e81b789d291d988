//! The ledger's rules, one test each (the property test is in
//! `properties.rs`).

use std::time::{Duration, Instant};

use super::*;

const P: u32 = 3;
const E: i64 = 7;
const T0: i64 = 1_700_000_000_000;

/// A ledger holding partition `P` at epoch `E` from `T0`, as claimed with
/// that watermark already stored.
fn held() -> Ledger {
    let mut l = Ledger::default();
    l.acquire(P, E, T0, Some(T0));
    l
}

/// Hands out `slots` of check 1 at `now` and sends them as tags 1, 2, ….
fn send_all(l: &mut Ledger, now: i64, slots: &[i64], at: Instant) {
    l.hand_out(P, now, slots.iter().map(|s| (*s, 1)));
    for (i, slot) in slots.iter().enumerate() {
        l.sent(P, vec![(*slot, 1)], i as u64 + 1, at);
    }
}

fn miss(slot: i64, reason: MissReason) -> Miss {
    Miss { partition: P, check_id: 1, slot, reason }
}

#[test]
fn a_fresh_claim_resumes_at_its_watermark_and_writes_nothing_new() {
    let mut l = held();
    assert!(l.holds(P, E) && !l.holds(P, E + 1) && !l.holds(P + 1, E));
    assert_eq!(l.watermark(P), Some(T0));
    assert_eq!(l.marks_to_write(), vec![], "the lease row already says T0");
    // A lease row without a watermark gets the start written.
    let mut l = Ledger::default();
    l.acquire(P, E, T0, None);
    assert_eq!(l.marks_to_write(), vec![(P, E, T0)]);
    assert_eq!(l.marks_to_write(), vec![], "written once");
}

#[test]
fn with_nothing_in_flight_the_watermark_is_what_was_handed_out() {
    let mut l = held();
    l.hand_out(P, T0 + 500, []);
    assert_eq!(l.watermark(P), Some(T0 + 501), "every slot up to now is accounted for");
    // A clock step back never moves it back.
    l.hand_out(P, T0 + 100, []);
    assert_eq!(l.watermark(P), Some(T0 + 501));
    assert_eq!(l.marks_to_write(), vec![(P, E, T0 + 501)]);
}

#[test]
fn the_watermark_waits_for_the_oldest_unconfirmed_slot() {
    let mut l = held();
    let at = Instant::now();
    l.hand_out(P, T0 + 1000, [(T0 + 200, 1), (T0 + 400, 2)]);
    assert_eq!(l.watermark(P), Some(T0 + 200), "handed out, not yet published");
    l.sent(P, vec![(T0 + 200, 1)], 1, at);
    l.sent(P, vec![(T0 + 400, 2)], 2, at);
    assert_eq!(l.watermark(P), Some(T0 + 200));
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 400));
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 1001));
}

#[test]
fn confirms_out_of_order_move_the_watermark_only_past_settled_slots() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200, T0 + 300], Instant::now());
    assert!(l.confirm(3, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100), "a later confirm does not pass an earlier slot");
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 200));
    assert_eq!(l.marks_to_write(), vec![(P, E, T0 + 200)]);
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 1001));
    assert_eq!(l.awaiting_confirm(), 0);
}

#[test]
fn a_nack_in_the_middle_is_a_recorded_miss_and_settles_its_slot() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200, T0 + 300], Instant::now());
    assert_eq!(l.confirm(2, false, Confirm::Nack), vec![miss(T0 + 200, MissReason::Rejected)]);
    assert_eq!(l.watermark(P), Some(T0 + 100), "still behind the first, unconfirmed");
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 300), "past the refused slot: its miss is recorded");
    assert!(l.confirm(2, false, Confirm::Nack).is_empty(), "a repeated nack records nothing twice");
}

#[test]
fn multiple_confirms_settle_every_tag_up_to_theirs() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200, T0 + 300, T0 + 400], Instant::now());
    assert!(l.confirm(3, true, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 400));
    assert_eq!(l.awaiting_confirm(), 1);
    assert_eq!(l.confirm(4, true, Confirm::Nack), vec![miss(T0 + 400, MissReason::Rejected)]);
    assert_eq!(l.watermark(P), Some(T0 + 1001));
    // A multiple nack reports each slot it refused.
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200], Instant::now());
    assert_eq!(
        l.confirm(2, true, Confirm::Nack),
        vec![miss(T0 + 100, MissReason::Rejected), miss(T0 + 200, MissReason::Rejected)]
    );
    // The highest possible tag settles everything.
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100], Instant::now());
    assert!(l.confirm(u64::MAX, true, Confirm::Ack).is_empty());
    assert_eq!(l.awaiting_confirm(), 0);
    assert_eq!(l.watermark(P), Some(T0 + 1001));
}

#[test]
fn multiple_confirms_span_partitions() {
    let mut l = held();
    l.acquire(P + 1, E, T0, Some(T0));
    let at = Instant::now();
    l.hand_out(P, T0 + 1000, [(T0 + 100, 1)]);
    l.hand_out(P + 1, T0 + 1000, [(T0 + 150, 9)]);
    l.sent(P, vec![(T0 + 100, 1)], 1, at);
    l.sent(P + 1, vec![(T0 + 150, 9)], 2, at);
    assert!(l.confirm(2, true, Confirm::Ack).is_empty());
    assert_eq!((l.watermark(P), l.watermark(P + 1)), (Some(T0 + 1001), Some(T0 + 1001)));
}

#[test]
fn a_returned_publish_is_unroutable_whatever_its_confirm() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200, T0 + 300], Instant::now());
    l.returned(1, T0 + 100);
    l.returned(1, T0 + 200);
    assert_eq!(l.confirm(1, false, Confirm::Ack), vec![miss(T0 + 100, MissReason::Unroutable)]);
    assert_eq!(l.confirm(2, false, Confirm::Nack), vec![miss(T0 + 200, MissReason::Unroutable)]);
    assert!(l.confirm(3, false, Confirm::Ack).is_empty(), "a return is for its own message only");
    // A return of a message never sent changes nothing.
    l.returned(5, T0);
    assert_eq!(l.watermark(P), Some(T0 + 1001));
}

#[test]
fn unknown_and_repeated_tags_settle_nothing() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100], Instant::now());
    assert!(l.confirm(9, false, Confirm::Nack).is_empty());
    assert!(l.confirm(0, true, Confirm::Nack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100));
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert!(l.confirm(1, false, Confirm::Nack).is_empty(), "already settled as published");
}

#[test]
fn a_lost_channel_holds_the_watermark_and_its_confirms_never_count() {
    let mut l = held();
    let at = Instant::now();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200], at);
    l.returned(1, T0 + 100);
    l.channel_lost();
    assert_eq!(l.awaiting_confirm(), 0);
    assert_eq!(l.oldest_unconfirmed(), None);
    assert_eq!(l.watermark(P), Some(T0 + 100), "nothing unconfirmed passes");
    assert!(l.has_unsent(P));
    assert_eq!(l.unsent(P).collect::<Vec<_>>(), vec![(T0 + 100, 1), (T0 + 200, 1)], "oldest first");
    // The new channel's tags restart at 1: an ack of the new tag 1 is
    // for the republished slot, not the old one, and the old return is gone.
    l.sent(P, vec![(T0 + 200, 1)], 1, at);
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100));
    l.sent(P, vec![(T0 + 100, 1)], 2, at);
    assert!(l.confirm(2, false, Confirm::Ack).is_empty(), "the return died with its channel");
    assert_eq!(l.watermark(P), Some(T0 + 1001));
    assert!(!l.has_unsent(P));
}

#[test]
fn a_republished_slot_is_settled_only_by_its_new_tag() {
    let mut l = held();
    let at = Instant::now();
    l.hand_out(P, T0 + 1000, [(T0 + 100, 1)]);
    l.sent(P, vec![(T0 + 100, 1)], 1, at);
    // The same slot published again on the same channel (it cannot be
    // today, but a stale tag must never settle a newer publish).
    l.sent(P, vec![(T0 + 100, 1)], 2, at);
    assert!(l.confirm(1, false, Confirm::Nack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100));
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 1001));
}

#[test]
fn a_lease_lost_with_confirms_pending_writes_nothing_more() {
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200], Instant::now());
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.marks_to_write(), vec![(P, E, T0 + 200)], "written: the oldest still unconfirmed");
    l.drop_partition(P);
    assert!(!l.holds(P, E));
    assert_eq!(l.watermark(P), None);
    assert_eq!(l.marks_to_write(), vec![], "no watermark of a lost lease");
    // Its confirms still arrive: they settle nothing and record nothing
    // (the new owner resumes at T0+200 and publishes that slot itself).
    assert_eq!(l.awaiting_confirm(), 1, "still counted against the in-flight bound");
    assert!(l.confirm(2, false, Confirm::Nack).is_empty());
    assert_eq!(l.awaiting_confirm(), 0);
    // Claimed again (a higher epoch): the old tags do not touch the new books.
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100], Instant::now());
    l.drop_partition(P);
    l.acquire(P, E + 1, T0 + 100, Some(T0 + 100));
    l.hand_out(P, T0 + 1000, [(T0 + 100, 1)]);
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100), "the new claim's slot is still unpublished");
    assert_eq!(l.marks_to_write(), vec![]);
}

#[test]
fn a_release_waits_for_confirms_then_hands_back_the_final_watermark() {
    let mut l = held();
    let at = Instant::now();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200], at);
    l.start_release(P, at + Duration::from_secs(2));
    assert!(l.releasing(P));
    assert_eq!(l.marks_to_write(), vec![], "a releasing partition hands its watermark back itself");
    assert_eq!(l.finish_releases(at), vec![], "confirms pending");
    assert!(l.confirm(2, true, Confirm::Ack).is_empty());
    assert_eq!(l.finish_releases(at), vec![(P, T0 + 1001)]);
    assert_eq!(l.watermark(P), None, "its books are closed");
    // Past the deadline it is handed back with what is unconfirmed still ahead.
    let mut l = held();
    send_all(&mut l, T0 + 1000, &[T0 + 100, T0 + 200], at);
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    l.start_release(P, at + Duration::from_secs(2));
    assert_eq!(l.finish_releases(at + Duration::from_millis(1999)), vec![]);
    assert_eq!(l.finish_releases(at + Duration::from_secs(2)), vec![(P, T0 + 100)]);
    // A release of a partition not held does nothing.
    l.start_release(P, at);
    assert!(!l.releasing(P));
}

#[test]
fn giving_up_a_slot_records_a_miss_and_a_deleted_check_records_none() {
    let mut l = held();
    l.hand_out(P, T0 + 1000, [(T0 + 100, 1), (T0 + 200, 1)]);
    assert_eq!(l.give_up(P, T0 + 100, 1), miss(T0 + 100, MissReason::CatchUp));
    assert_eq!(l.watermark(P), Some(T0 + 200));
    l.forget(P, T0 + 200, 1);
    assert_eq!(l.watermark(P), Some(T0 + 1001));
}

#[test]
fn the_oldest_unconfirmed_publish_is_the_first_sent_on_the_channel() {
    let mut l = held();
    let at = Instant::now();
    l.hand_out(P, T0 + 1000, [(T0 + 100, 1), (T0 + 200, 1)]);
    l.sent(P, vec![(T0 + 200, 1)], 1, at);
    l.sent(P, vec![(T0 + 100, 1)], 2, at + Duration::from_secs(1));
    assert_eq!(l.oldest_unconfirmed(), Some(at));
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.oldest_unconfirmed(), Some(at + Duration::from_secs(1)));
    assert_eq!(l.awaiting_confirm(), 1);
}

/// Hands out `slots` (slot, check) at `now` and sends them in messages of
/// the given sizes, as tags 1, 2, ….
fn send_batches(l: &mut Ledger, now: i64, slots: &[(i64, i64)], sizes: &[usize], at: Instant) {
    l.hand_out(P, now, slots.iter().copied());
    let mut rest = slots;
    for (i, size) in sizes.iter().enumerate() {
        let (message, after) = rest.split_at(*size);
        l.sent(P, message.to_vec(), i as u64 + 1, at);
        rest = after;
    }
    assert!(rest.is_empty(), "every slot is in a message");
}

#[test]
fn one_tag_settles_every_slot_of_its_message() {
    let mut l = held();
    let slots = [(T0 + 100, 1), (T0 + 100, 2), (T0 + 200, 1), (T0 + 300, 3)];
    send_batches(&mut l, T0 + 1000, &slots, &[3, 1], Instant::now());
    assert_eq!(l.awaiting_confirm(), 4, "the bound counts slots, not messages");
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100), "the first message is unconfirmed");
    assert_eq!(l.awaiting_confirm(), 3);
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 1001));
    assert_eq!(l.awaiting_confirm(), 0);
}

#[test]
fn a_nacked_message_is_a_miss_for_each_of_its_slots() {
    let mut l = held();
    let slots = [(T0 + 100, 1), (T0 + 100, 2), (T0 + 200, 1)];
    send_batches(&mut l, T0 + 1000, &slots, &[2, 1], Instant::now());
    let two = |slot, check| Miss { partition: P, check_id: check, slot, reason: MissReason::Rejected };
    assert_eq!(l.confirm(1, false, Confirm::Nack), vec![two(T0 + 100, 1), two(T0 + 100, 2)]);
    assert_eq!(l.watermark(P), Some(T0 + 200));
    assert!(l.confirm(1, false, Confirm::Nack).is_empty(), "settled once");
}

#[test]
fn a_returned_message_is_unroutable_for_all_its_slots_named_by_its_first() {
    let mut l = held();
    let slots = [(T0 + 100, 1), (T0 + 100, 2), (T0 + 200, 1), (T0 + 300, 4)];
    send_batches(&mut l, T0 + 1000, &slots, &[3, 1], Instant::now());
    // A return names the message by the first slot of its id.
    l.returned(1, T0 + 100);
    let unroutable =
        |slot, check| Miss { partition: P, check_id: check, slot, reason: MissReason::Unroutable };
    assert_eq!(
        l.confirm(2, true, Confirm::Ack),
        vec![unroutable(T0 + 100, 1), unroutable(T0 + 100, 2), unroutable(T0 + 200, 1)],
        "the second message, not returned, is published"
    );
    assert_eq!(l.watermark(P), Some(T0 + 1001));
    // A return naming a slot that is not the first of its message matches nothing.
    let mut l = held();
    send_batches(&mut l, T0 + 1000, &slots, &[4], Instant::now());
    l.returned(2, T0 + 100);
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
}

#[test]
fn slots_republished_in_other_messages_are_settled_only_by_their_new_tags() {
    let mut l = held();
    let at = Instant::now();
    let slots = [(T0 + 100, 1), (T0 + 200, 1), (T0 + 300, 1)];
    send_batches(&mut l, T0 + 1000, &slots, &[3], at);
    l.channel_lost();
    assert_eq!(l.unsent(P).collect::<Vec<_>>(), slots.to_vec());
    // Republished in two messages, the new channel's tags from 1 again.
    l.sent(P, vec![(T0 + 200, 1), (T0 + 300, 1)], 1, at);
    l.sent(P, vec![(T0 + 100, 1)], 2, at);
    assert!(l.confirm(1, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 100));
    // One of a message's slots given up (it cannot be today: a stale tag
    // must still settle only what it carries and still holds).
    l.hand_out(P, T0 + 1500, [(T0 + 1200, 2), (T0 + 1300, 2)]);
    l.sent(P, vec![(T0 + 1200, 2), (T0 + 1300, 2)], 3, at);
    l.forget(P, T0 + 1200, 2);
    assert_eq!(l.confirm(3, false, Confirm::Nack), vec![miss_of(T0 + 1300, 2, MissReason::Rejected)]);
    assert!(l.confirm(2, false, Confirm::Ack).is_empty());
    assert_eq!(l.watermark(P), Some(T0 + 1501));
    assert_eq!(l.awaiting_confirm(), 0);
}

fn miss_of(slot: i64, check_id: i64, reason: MissReason) -> Miss {
    Miss { partition: P, check_id, slot, reason }
}
