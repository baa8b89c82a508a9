//! The `rear-restore` that becomes `/init` is statically linked: no `PT_INTERP`, no
//! `DT_NEEDED` (a rescue system whose C library is broken must still start).

use std::path::Path;

#[test]
fn static_rear_restore_has_no_interpreter() {
    assert!(
        std::env::var_os("REAR_BIN_DIR").is_some(),
        "REAR_BIN_DIR is not set: run the VM tests through `make vmtest`, which builds the static binaries"
    );
    let path = crate::bin("rear-restore");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = rear_mkimage::resolve::elf::parse(Path::new(&path), &bytes)
        .unwrap()
        .expect("rear-restore is not an ELF file");
    assert_eq!(
        info.interp,
        None,
        "{} has a PT_INTERP: not static",
        path.display()
    );
    assert!(
        info.needed.is_empty(),
        "{} needs {:?}",
        path.display(),
        info.needed
    );
}
