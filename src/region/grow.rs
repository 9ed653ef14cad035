//! Growing a region: the committed size in its header, how far each process may reach,
//! and [`Region::grow`] (see the [module docs](super#growing)).

use super::error::RegionError;
use super::header::{COMMITTED_OFFSET, GROWS_OFFSET, LAST_GROW_OFFSET};
use super::mapping::Region;
use super::offset::Offset;
use crate::sync::atomic::{AtomicU64, Ordering};

impl Region {
    /// The header's growth words: committed size, growths so far, bytes of the last one.
    fn growth_words(&self) -> [&AtomicU64; 3] {
        // The three words lie inside the header, which every region holds (and below the
        // committed size, which is never less than the header: no refresh, no recursion).
        let w = |at: u64| {
            self.at::<AtomicU64>(Offset::new(at))
                .expect("the header is always mapped")
        };
        [w(COMMITTED_OFFSET), w(GROWS_OFFSET), w(LAST_GROW_OFFSET)]
    }

    /// The growths of the file so far, and the bytes the last one added.
    pub fn growths(&self) -> (u64, u64) {
        let [_, n, last] = self.growth_words();
        (n.load(Ordering::Relaxed), last.load(Ordering::Relaxed))
    }

    /// Takes note of a larger committed size published by the process that grew the file,
    /// once the file is seen to hold it (a header word written wrongly by a buggy process
    /// never lets an offset past the file's end be resolved); returns the size now known.
    pub(crate) fn committed_now(&self) -> u64 {
        let known = self.committed.load(Ordering::Relaxed);
        // SYNC POINT: acquires the grower's release store, which follows its allocation
        // of the file's new pages.
        let said = self.growth_words()[0].load(Ordering::Acquire);
        if said <= known {
            return known;
        }
        let file = self.file.metadata().map_or(known, |m| m.len());
        let now = said.min(file).min(self.max_len()).max(known);
        self.committed.fetch_max(now, Ordering::Relaxed);
        now
    }

    /// Grows the region's file to `new_len` bytes (at most the maximum), allocating its
    /// pages now (`posix_fallocate`), so that a full `/dev/shm` is an error here and never
    /// a SIGBUS later; then publishes the new committed size. Every process sees it
    /// without remapping: its mapping already covers the maximum. A process killed in the
    /// middle leaves the file larger than the committed size says, which the next growth
    /// finds allocated. Returns the committed size (unchanged if it already held
    /// `new_len`).
    ///
    /// # Errors
    ///
    /// [`RegionError::MaxReached`] past the maximum, [`RegionError::NoSpace`] when
    /// `/dev/shm` cannot hold the new pages (with what it has free), [`RegionError::Io`].
    pub fn grow(&self, new_len: u64) -> Result<u64, RegionError> {
        let [committed, grows, last] = self.growth_words();
        let now = self.committed_now();
        if new_len <= now {
            return Ok(now);
        }
        if new_len > self.max_len() {
            return Err(RegionError::MaxReached {
                name: self.name.to_string(),
                max: self.max_len(),
                wanted: new_len,
            });
        }
        crate::fault::pause_point("region.grow.begun");
        super::create::allocate_pages(&self.file, &self.name, now, new_len)?;
        crate::fault::pause_point("region.grow.allocated");
        // SYNC POINT: release, so a process that sees the new size sees the file hold it.
        let before = committed.fetch_max(new_len, Ordering::Release);
        if before < new_len {
            grows.fetch_add(1, Ordering::Relaxed);
            last.store(new_len - before.max(now), Ordering::Relaxed);
        }
        self.committed.fetch_max(new_len, Ordering::Relaxed);
        crate::fault::pause_point("region.grow.published");
        Ok(new_len)
    }
}
