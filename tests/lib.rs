//! Support for the system tests (`tests/it`, `tests/server`, `testvm`): where the programs
//! under test are.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The program `name` (`rear-mkimage`, `rear-restore`, `rear-server`): from `REAR_BIN_DIR`
/// when it is set (`make vmtest` points it at the static release build), else cargo's build
/// beside the test binary (`target/<profile>/`), which `cargo test` at the workspace root makes
/// because each program's package has a CLI test.
///
/// # Panics
/// When the program is not there, saying how to build it.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("REAR_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    // A test binary is target/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("{} has no target/<profile>/deps parent", exe.display()));
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run the tests with `cargo test` at the workspace root (or `make test`), \
         or build it with `cargo build -p {name}`",
        path.display()
    );
    path
}
