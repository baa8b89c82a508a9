//! Bad input: one error line naming the thing, a non-zero exit, nothing in the output dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::{assert_one_error, files_in, mkimage, run, static_init};

/// A bzImage-looking kernel: the setup header's version string is all `rear-mkimage` reads.
fn fake_kernel(release: &str) -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    b[0x300..0x300 + release.len()].copy_from_slice(release.as_bytes());
    b
}

/// A sysroot with a kernel, an empty module tree and the files `extra` names.
fn fake_root(extra: &[(&str, &[u8], u32)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("boot/vmlinuz-1.0-test", &fake_kernel("1.0-test"), 0o644);
    std::fs::create_dir_all(d.path().join("lib/modules/1.0-test")).unwrap();
    for (rel, data, mode) in extra {
        w(rel, data, *mode);
    }
    d
}

fn recipe(dir: &Path, text: &str) -> String {
    let p = dir.join("r.toml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// Runs a build into a fresh output dir and checks the dir stays empty.
fn fails(args: &[&str], root: &Path, needles: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let init_dir = tempfile::tempdir().unwrap();
    let o = run(mkimage()
        .args(["--output", "initrd", "--no-default-recipes", "--init"])
        .arg(static_init(init_dir.path()))
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out.path())
        .args(args));
    let line = assert_one_error(&o, needles);
    assert_eq!(
        files_in(out.path()),
        Vec::<String>::new(),
        "output dir not empty after: {line}"
    );
    line
}

#[test]
fn error_no_kernel_names_where_and_package() {
    let root = tempfile::tempdir().unwrap();
    let r = tempfile::tempdir().unwrap();
    fails(
        &["--recipe", &recipe(r.path(), "")],
        root.path(),
        &[
            "no kernel image found",
            "/boot/vmlinuz-*",
            "linux-image-amd64",
        ],
    );
}

#[test]
fn error_recipe_toml_names_file_line_column() {
    let root = fake_root(&[]);
    let r = tempfile::tempdir().unwrap();
    let file = recipe(r.path(), "description = \"x\"\nprograms = [sh\n");
    fails(&["--recipe", &file], root.path(), &[&format!("{file}:2:")]);
}

#[test]
fn error_program_not_on_path() {
    let root = fake_root(&[]);
    let r = tempfile::tempdir().unwrap();
    let file = recipe(r.path(), "programs = [\"no-such-program\"]\n");
    fails(
        &["--recipe", &file, "--modules", "none"],
        root.path(),
        &["program \"no-such-program\"", &file, "/usr/bin"],
    );
}

#[test]
fn error_program_not_elf_nor_script() {
    let root = fake_root(&[("usr/bin/tool", b"just text\n", 0o755)]);
    let r = tempfile::tempdir().unwrap();
    let file = recipe(r.path(), "programs = [\"tool\"]\n");
    fails(
        &["--recipe", &file, "--modules", "none"],
        root.path(),
        &["/usr/bin/tool", "not an ELF executable"],
    );
}

#[test]
fn error_program_corrupt_elf() {
    let root = fake_root(&[("usr/bin/tool", b"\x7fELF\x02\x01\x01\0\0\0", 0o755)]);
    let r = tempfile::tempdir().unwrap();
    let file = recipe(r.path(), "programs = [\"tool\"]\n");
    fails(
        &["--recipe", &file, "--modules", "none"],
        root.path(),
        &["/usr/bin/tool"],
    );
}

#[test]
fn error_root_not_a_directory() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let r = tempfile::tempdir().unwrap();
    let line = fails(
        &["--recipe", &recipe(r.path(), "")],
        f.path(),
        &["is not a directory"],
    );
    assert!(line.contains(&f.path().display().to_string()), "{line}");
}

#[test]
fn error_output_dir_not_writable() {
    let root = fake_root(&[]);
    let r = tempfile::tempdir().unwrap();
    let file_as_dir = tempfile::NamedTempFile::new().unwrap();
    let out = file_as_dir.path().join("out");
    let o = run(mkimage()
        .args([
            "--output",
            "initrd",
            "--no-default-recipes",
            "--modules",
            "none",
            "--init",
        ])
        .arg(static_init(r.path()))
        .arg("--root")
        .arg(root.path())
        .arg("--out")
        .arg(&out)
        .args(["--recipe", &recipe(r.path(), "")]));
    assert_one_error(&o, &[&out.display().to_string()]);
}

#[test]
fn error_corrupt_modules_dep_names_file_and_line() {
    let root = fake_root(&[(
        "lib/modules/1.0-test/modules.dep",
        b"kernel/a.ko:\nthis line is garbage\n",
        0o644,
    )]);
    let r = tempfile::tempdir().unwrap();
    fails(
        &["--recipe", &recipe(r.path(), ""), "--modules", "all"],
        root.path(),
        &["modules.dep", "2"],
    );
}

#[test]
fn error_bad_source_date_epoch() {
    let root = fake_root(&[]);
    let r = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = run(mkimage()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .args(["--no-default-recipes", "--modules", "none", "--init"])
        .arg(static_init(r.path()))
        .arg("--root")
        .arg(root.path())
        .arg("--out")
        .arg(out.path())
        .args(["--recipe", &recipe(r.path(), "")]));
    assert_one_error(&o, &["SOURCE_DATE_EPOCH", "yesterday"]);
}
