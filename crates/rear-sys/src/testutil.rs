//! The layouts captured in QEMU (`tests/fixtures/layout/<name>/`) assembled by this crate's
//! capture, for the layout tests. (The golden `layout.json` is `rear_testutil::layout`.)
#![allow(clippy::unwrap_used)]

use crate::layout::Layout;
use crate::layout::capture::{Outputs, from_outputs};

/// A fixture's raw tool outputs assembled by [`from_outputs`].
pub fn assembled(name: &str) -> Layout {
    from_outputs(&Outputs::from_dir(&rear_testutil::layout::fixture_dir(name)).unwrap()).unwrap()
}
