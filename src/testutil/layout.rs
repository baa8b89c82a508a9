//! The layouts captured in QEMU (`tests/fixtures/layout/<name>/`), for the layout tests.
#![allow(clippy::unwrap_used)]

use crate::layout::Layout;
use crate::layout::capture::{Outputs, from_outputs};

/// The golden `layout.json` of a fixture.
pub fn golden(name: &str) -> Layout {
    let path = format!(
        "{}/tests/fixtures/layout/{name}/layout.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Layout::from_json(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
}

/// A fixture's raw tool outputs assembled by [`from_outputs`].
pub fn assembled(name: &str) -> Layout {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layout")
        .join(name);
    from_outputs(&Outputs::from_dir(&dir).unwrap()).unwrap()
}
