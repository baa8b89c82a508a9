//! The layouts captured in QEMU (`tests/fixtures/layout/<name>/`), for the layout tests.

use std::path::PathBuf;

use rear_model::layout::model::Layout;

/// The directory of the repository's test fixtures (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

/// The directory of one captured layout fixture, with the raw output of every tool.
pub fn fixture_dir(name: &str) -> PathBuf {
    fixtures().join("layout").join(name)
}

/// The golden `layout.json` of a fixture.
pub fn golden(name: &str) -> Layout {
    let path = fixture_dir(name).join("layout.json");
    let text = std::fs::read_to_string(&path).unwrap();
    Layout::from_json(&text, &path.display().to_string()).unwrap()
}
