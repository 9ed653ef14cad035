//! [`ClientSide`]: finds a named pipe in a region and receives (or sends) through it.

use super::error::SidesError;
use super::side::{side_accessors, wait_options, Side};
use super::wait::WaitPolicy;

/// Builder for [`ClientSide`]: `ClientSide::new(region, pipe)`, options, then
/// [`start`](ClientSideBuilder::start).
#[derive(Clone, Debug)]
#[must_use = "nothing happens until start()"]
pub struct ClientSideBuilder {
    region: String,
    pipe: String,
    wait: WaitPolicy,
}

wait_options!(ClientSideBuilder);

impl ClientSideBuilder {
    /// Waits for the region and then for the pipe to appear in its directory (sleeping on
    /// the directory's change word, not polling), and attaches to it. If the region is
    /// replaced by a newer one of the same name while it waits, it follows the new one.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] or [`SidesError::Broken`] while waiting; a bad name;
    /// [`SidesError::NoDirectory`] for a region not made by `ShmMain`.
    #[must_use = "dropping a side releases its pipe"]
    pub fn start(self) -> Result<ClientSide, SidesError> {
        let side = Side::start(
            &self.region,
            &self.pipe,
            &self.wait,
            |dir, name, by, user| dir.open_pipe(name, by, user),
        )?;
        Ok(ClientSide { side })
    }
}

/// The side that attaches to an existing pipe: the seed's `ClientSide`.
#[derive(Debug)]
#[must_use = "dropping a side releases its pipe"]
pub struct ClientSide {
    side: Side,
}

impl ClientSide {
    /// Starts building a client side for pipe `pipe` in region `region`.
    // The seed's vocabulary: `new(...)` takes the required arguments, options follow,
    // `start()` makes the thing.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(region: impl Into<String>, pipe: impl Into<String>) -> ClientSideBuilder {
        ClientSideBuilder {
            region: region.into(),
            pipe: pipe.into(),
            wait: WaitPolicy::default(),
        }
    }
}

side_accessors!(ClientSide);
