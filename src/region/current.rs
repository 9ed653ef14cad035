//! Whether a region's name still stands for it: asked by sides before they reuse the
//! process's handle of a region, and while they wait on one.
//!
//! Looking at the file costs a system call (about 0.5-1.5 us on a virtual machine), which a
//! side started per request would pay each time. So a process that unlinks a region's name
//! through this library also sets the header's removed word, which every process holding
//! the region reads for free, and a handle remembers when a look last found its name
//! standing.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::header::REMOVED_OFFSET;
use super::mapping::Region;
use super::offset::Offset;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::monotonic_ns;

impl Region {
    /// Whether the name still stands for this region's file (it may have been unlinked,
    /// or replaced by a newer region of the same name).
    ///
    /// A name unlinked through this library (by any process) is seen in the region's
    /// header. Otherwise this asks the open file, which is cheaper than looking the name
    /// up: a file left without a name (unlinked by hand) is not current, and a file with
    /// one name is, since a region is replaced under its name only once the old file is
    /// unlinked. A region file renamed by hand therefore still counts as current to the
    /// processes that hold it. Only a file with several names is looked up by its path.
    pub fn is_current(&self) -> bool {
        if self.name_removed() {
            return false;
        }
        let current = match self.file.metadata().map(|m| m.nlink()) {
            Ok(0) => false,
            Ok(1) => true,
            _ => std::fs::symlink_metadata(&self.path)
                .is_ok_and(|m| (m.dev(), m.ino()) == self.inode),
        };
        if current {
            self.current_at
                .store(monotonic_ns().max(1), Ordering::Relaxed);
        }
        current
    }

    /// [`is_current`](Self::is_current), answered without a system call when a look at
    /// the file within the last `max_age` found the name standing. A name unlinked through
    /// this library is seen at once; one unlinked or replaced by other means, once
    /// `max_age` has passed since the last look.
    pub(crate) fn is_current_within(&self, max_age: Duration) -> bool {
        if self.name_removed() {
            return false;
        }
        let at = self.current_at.load(Ordering::Relaxed);
        let age = monotonic_ns().saturating_sub(at);
        (at != 0 && u128::from(age) < max_age.as_nanos()) || self.is_current()
    }

    /// Records in the header that the name was unlinked: called by whoever unlinked it.
    pub(super) fn mark_removed(&self) {
        self.removed_word().store(1, Ordering::Release);
    }

    fn name_removed(&self) -> bool {
        self.removed_word().load(Ordering::Acquire) != 0
    }

    fn removed_word(&self) -> &AtomicU32 {
        // The removed word lies inside the header, which every region holds.
        self.at::<AtomicU32>(Offset::new(REMOVED_OFFSET))
            .expect("the header is always mapped")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::region::Region;

    use crate::region::name::unique_test_name as unique;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_name_unlinked_through_the_library_is_seen_without_looking_at_the_file() {
        let name = unique("removed");
        let creator = Region::create(&name, 4096).unwrap();
        let other = Region::attach(&name).unwrap();
        assert!(other.is_current_within(HOUR));
        assert!(creator.try_unlink().unwrap());
        // The last look at the file is recent, but the header says the name is gone.
        assert!(!other.is_current_within(HOUR));
        assert!(!other.is_current());
        assert!(!creator.is_current_within(HOUR));
    }

    #[test]
    fn a_name_unlinked_by_hand_is_seen_once_the_last_look_is_old_enough() {
        let name = unique("by-hand");
        let r = Region::create(&name, 4096).unwrap();
        assert!(r.is_current());
        std::fs::remove_file(name.file_path()).unwrap();
        // Within the age allowed, the last look answers; past it, the file is asked.
        assert!(r.is_current_within(HOUR));
        assert!(!r.is_current_within(Duration::ZERO));
        assert!(!r.is_current());
        // A handle that never looked asks the file whatever the age allowed.
        let name = unique("never-looked");
        let r = Region::create(&name, 4096).unwrap();
        std::fs::remove_file(name.file_path()).unwrap();
        assert!(!r.is_current_within(HOUR));
    }
}
