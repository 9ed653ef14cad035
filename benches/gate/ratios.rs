//! The ratios the gate compares with its baseline.

/// The ratios: name, numerator figure, denominator figure, what it says, whether it is
/// gated. Lower is better for each.
///
/// The cache-line floor across the two vCPUs of a virtual machine moves with the host's
/// placement of them (35 ns to 500 ns seen on one machine), and our spinning round trip
/// moves with it but not in proportion, so ratios to the floor are reported, not gated;
/// nor is the spinning round trip over a same-core pipe(2) (a system call, which does not
/// move with the placement). The spinning round trip is gated against crossbeam-channel's
/// across the same two CPUs, also made of cache-line transfers. The other gated ratios
/// divide by figures that stay put: same-core system calls (pipe(2), a Unix socket, the
/// futex), the system allocator and an uncontended pthread mutex. Streaming across the CPUs is reported, not gated: on
/// some placements of the vCPUs (SMT siblings, it seems) a busy producer and consumer slow
/// each other down threefold while a ping-pong does not; on one CPU it is steady.
pub const RATIOS: [(&str, &str, &str, &str, bool); 19] = [
    (
        "spin_rt/cacheline_floor",
        "shm_spin_diff_64",
        "floor_cacheline_diff",
        "spinning handle round trip over the cache-line floor (diff-core)",
        false,
    ),
    (
        "spin_rt/crossbeam_spin",
        "shm_spin_diff_64",
        "cb_spin_diff_64",
        "spinning handle round trip over crossbeam-channel's spinning round trip between \
         two threads (both diff-core)",
        true,
    ),
    (
        "o2o_spin_rt/crossbeam_spin",
        "o2o_spin_diff_64",
        "cb_spin_diff_64",
        "spinning handle round trip over one-to-one pipes (lanes) over crossbeam-channel's \
         (both diff-core)",
        false,
    ),
    (
        "o2o_spin_rt/cacheline_floor",
        "o2o_spin_diff_64",
        "floor_cacheline_diff",
        "spinning handle round trip over one-to-one pipes (lanes) over the cache-line floor \
         (diff-core)",
        false,
    ),
    (
        "stream_o2o/stream",
        "stream_int_diff_o2o",
        "stream_int_diff",
        "streamed new int per item over a one-to-one pipe over the same through the ring \
         (diff-core, in turn)",
        false,
    ),
    (
        "ring_hop/crossbeam_spin",
        "ring_hop_diff",
        "cb_spin_diff_64",
        "the ring's bare spinning round trip (heap, two threads) over crossbeam-channel's",
        false,
    ),
    (
        "lane_hop/crossbeam_spin",
        "lane_hop_diff",
        "cb_spin_diff_64",
        "the lane's bare spinning round trip (heap, two threads) over crossbeam-channel's",
        false,
    ),
    (
        "spin_rt/pipe2_same",
        "shm_spin_diff_64",
        "pipe2_same_64",
        "spinning handle round trip (diff-core) over a same-core pipe(2) 64 B round trip",
        false,
    ),
    (
        "spin_rt_1MiB/spin_rt_64B",
        "shm_spin_diff_1048576",
        "shm_spin_diff_64",
        "handle round trip, 1 MiB over 64 B payload (diff-core, spinning)",
        true,
    ),
    (
        "block_rt/futex_floor_same",
        "shm_block_same_64",
        "floor_futex_same",
        "blocking round trip over the futex floor (same-core)",
        true,
    ),
    (
        "block_rt/uds_same",
        "shm_block_same_64",
        "uds_same_64",
        "blocking round trip over a Unix socket's 64 B round trip (same-core)",
        true,
    ),
    (
        "stream_item/cacheline_floor",
        "stream_int_diff",
        "floor_cacheline_diff",
        "streamed item 1 -> 1 (share, send, receive, drop) over the cache-line floor",
        false,
    ),
    (
        "stream_item/pipe2_same",
        "stream_int_diff",
        "pipe2_same_64",
        "streamed item 1 -> 1 (diff-core) over a same-core pipe(2) 64 B round trip",
        false,
    ),
    (
        "stream_item_same/pipe2_same",
        "stream_int_same",
        "pipe2_same_64",
        "streamed item 1 -> 1 (same-core) over a same-core pipe(2) 64 B round trip",
        true,
    ),
    (
        "alloc_pair/system_pair",
        "alloc_pool_16",
        "alloc_system_16",
        "pool alloc+free pair over the system allocator's (16 B, one process)",
        true,
    ),
    (
        "alloc_2proc/alloc_pair",
        "alloc_pool_16_2proc",
        "alloc_pool_16",
        "pool alloc+free pair while a second process allocates from the same pool on the \
         other CPU, over the same alone (16 B)",
        true,
    ),
    (
        "alloc_grown/alloc_pair",
        "alloc_pool_16_grown",
        "alloc_pool_16",
        "pool alloc+free pair in a pool grown from 64 KiB over the same in a pool made at its \
         size (16 B, one process)",
        true,
    ),
    (
        "stream_grown/stream_same",
        "stream_int_same_grown",
        "stream_int_same",
        "streamed item 1 -> 1 (same-core) in a pool grown from 64 KiB over the same in a pool \
         made at its size",
        true,
    ),
    (
        "locked_update/pthread_update",
        "locked_update",
        "pthread_update",
        "locked table update (lock, increment a Tab's integer, unlock) over a \
         process-shared pthread mutex around a u64 (one process, uncontended)",
        true,
    ),
];
