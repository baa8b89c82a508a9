//! Backups for real: `rear-mkimage backup` then `rear-restore restore` into another
//! directory, compared with `stat`, `getfattr` and `getfacl`; the checksum file and file
//! list; truncated and corrupt archives; wrong URLs; the restic, borg and rsync recipes.

use std::path::Path;
use std::process::Command;

use super::{mkimage, restore_bin, run};

/// A one-line layout whose only mount is `/`, so `--root DIR` backs up DIR.
fn layout(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("layout.json");
    std::fs::write(
        &p,
        r#"{"version":1,"mounts":[{"device":"/dev/test","target":"/"}]}"#,
    )
    .unwrap();
    p
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Type, mode, owner, size (files), mtime in ns, link target and link count of every entry
/// below `dir`, sorted; the root itself left out.
fn tree(dir: &Path) -> String {
    let out = text(
        Command::new("find")
            .arg(".")
            .args(["-mindepth", "1", "-printf", "%p|%y|%m|%U|%G|%T@|%l|%n|%s\n"])
            .current_dir(dir),
    );
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| {
            // Directory sizes depend on the file system's history, not on the backup.
            if l.split('|').nth(1) == Some("d") {
                l.rsplit_once('|').unwrap().0.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn backup(root: &Path, out: &Path, method: &str, extra: &[&str]) -> std::process::Output {
    let l = layout(root.parent().unwrap());
    run(mkimage()
        .args(["backup", "--layout"])
        .arg(&l)
        .arg("--root")
        .arg(root)
        .arg("--backup-url")
        .arg(format!("file://{}", out.display()))
        .args(["--backup-method", method])
        .args(extra))
}

fn restore(out: &Path, target: &Path) -> std::process::Output {
    run(Command::new(restore_bin())
        .arg("restore")
        .arg("--backup-url")
        .arg(format!("file://{}", out.display()))
        .arg("--target")
        .arg(target)
        .args(["--config", "/nonexistent/backup.json"]))
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn root_backup_restore_keeps_everything() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI must run as root");
        eprintln!("skipping: needs root (CI runs as root)");
        return;
    }
    if !crate::tools::need(&["getfacl", "getfattr"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, dst) = (
        tmp.path().join("src"),
        tmp.path().join("out"),
        tmp.path().join("dst"),
    );
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    sh(
        r#"
        mkdir -p dir/sub skip 'with space'
        printf hello > dir/a; ln dir/a dir/hard; ln -s ../dir/a 'with space/link'
        truncate -s 64M sparse; printf x | dd of=sparse bs=1 seek=32M conv=notrunc 2>/dev/null
        setfattr -n user.rear -v value dir/a
        setfacl -m u:1234:rwx,g:99:r-x dir/sub; setfacl -d -m u:1234:rx dir/sub
        mknod dir/null c 1 3; mknod dir/loop b 7 0; mkfifo dir/fifo
        printf data > skip/file; printf keep > 'with space/file'
        chown 1234:5678 dir/a; chown -h 42:43 'with space/link'; chmod 4751 dir/a; chmod 1777 dir/sub
        touch -d '2001-02-03 04:05:06.123456789' dir/a
        touch -h -d '1999-12-31 23:59:59.5' 'with space/link'
        touch -d '2010-01-01' dir/sub dir
        "#,
        &src,
    );
    let o = backup(&src, &out, "tar", &["--exclude", "/skip"]);
    ok(&o);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.starts_with(&format!("backup {}/backup.tar.zst: ", out.display())),
        "{summary}"
    );

    // The checksum file is what sha256sum computes, and sha256sum can check it.
    let sums = std::fs::read_to_string(out.join("backup.tar.zst.sha256")).unwrap();
    let computed = text(
        Command::new("sha256sum")
            .arg("backup.tar.zst")
            .current_dir(&out),
    );
    assert_eq!(sums, computed);
    text(
        Command::new("sha256sum")
            .args(["-c", "--quiet", "backup.tar.zst.sha256"])
            .current_dir(&out),
    );

    // The file list has each member with its real size, and nothing excluded.
    let list = std::fs::read_to_string(out.join("backup.files")).unwrap();
    for line in [
        "-\t67108864\t./sparse",
        "l\t0\t./with space/link\t../dir/a",
        "c\t0\t./dir/null",
        "b\t0\t./dir/loop",
        "p\t0\t./dir/fifo",
        "d\t0\t./dir/sub/",
    ] {
        assert!(
            list.lines().any(|l| l == line),
            "{line:?} missing from\n{list}"
        );
    }
    assert!(!list.contains("skip"), "{list}");
    // The first of the two names read carries the data, the other links to it.
    assert!(
        list.contains("-\t5\t./dir/a\nh\t0\t./dir/hard\t./dir/a\n")
            || list.contains("-\t5\t./dir/hard\nh\t0\t./dir/a\t./dir/hard\n"),
        "{list}"
    );
    let tar_list = text(
        Command::new("sh")
            .args(["-c", "zstd -dc backup.tar.zst | tar -t | wc -l"])
            .current_dir(&out),
    );
    assert_eq!(tar_list.trim(), list.lines().count().to_string());

    let o = restore(&out, &dst);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("verified"));

    // Everything identical except what was excluded.
    sh("rm -r skip", &src);
    assert_eq!(tree(&src), tree(&dst));
    let facl = |d: &Path| {
        text(
            Command::new("getfacl")
                .args(["-R", "-P", "-n", "."])
                .current_dir(d),
        )
    };
    assert_eq!(facl(&src), facl(&dst));
    assert!(facl(&dst).contains("user:1234:rwx"), "{}", facl(&dst));
    let xattrs = |d: &Path| {
        text(
            Command::new("getfattr")
                .args(["-R", "-P", "-d", "-m", "-", "."])
                .current_dir(d),
        )
    };
    assert_eq!(xattrs(&src), xattrs(&dst));
    assert!(
        xattrs(&dst).contains("user.rear=\"value\""),
        "{}",
        xattrs(&dst)
    );
    // Hard links stay one inode; the sparse file stays sparse; devices keep their numbers.
    let stat = |d: &Path, args: &str| {
        text(
            Command::new("sh")
                .args(["-c", &format!("stat -c {args}")])
                .current_dir(d),
        )
    };
    let inodes = stat(&dst, "%i dir/a dir/hard");
    let mut it = inodes.lines();
    assert_eq!(it.next(), it.next());
    let blocks: u64 = stat(&dst, "%b sparse").trim().parse().unwrap();
    assert!(blocks <= 64, "sparse file restored with {blocks} blocks");
    assert_eq!(
        stat(&dst, "'%F %t:%T' dir/null dir/loop"),
        "character special file 1:3\nblock special file 7:0\n"
    );
    assert_eq!(
        stat(&dst, "'%a %u:%g %.9Y' dir/a"),
        "4751 1234:5678 981173106.123456789\n"
    );
}

/// A small tree any user can make: files, a symlink, odd modes and mtimes.
fn small_tree(src: &Path) {
    std::fs::create_dir_all(src).unwrap();
    sh(
        r#"
        mkdir -p etc/deep/er var
        printf 'root:x:0:0\n' > etc/passwd; head -c 300000 /dev/urandom > var/blob
        ln -s ../etc/passwd var/link; chmod 640 etc/passwd; chmod 700 etc/deep
        find . -mindepth 1 -exec touch -h -d '2004-01-01 00:00:00.25' {} +
        touch -d '2005-06-07 08:09:10' etc/passwd var/blob
        "#,
        src,
    );
}

#[test]
fn backup_truncated_or_corrupt_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
    small_tree(&src);
    ok(&backup(&src, &out, "tar", &[]));
    let archive = out.join("backup.tar.zst");
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(size > 200_000, "{size}");

    let copy = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "backup.tar.zst",
            "backup.tar.zst.sha256",
            "backup.json",
            "backup.files",
        ] {
            std::fs::copy(out.join(f), d.join(f)).unwrap();
        }
        let t = tmp.path().join(format!("{name}-target"));
        std::fs::create_dir_all(&t).unwrap();
        (d, t)
    };
    let err = |o: &std::process::Output| {
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };

    // Truncated, with backup.json beside it: refused before anything is written.
    let (d, t) = copy("truncated");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("backup.tar.zst"))
        .unwrap();
    f.set_len(size / 2).unwrap();
    let e = err(&restore(&d, &t));
    assert!(
        e.contains(&format!(
            "backup {}/backup.tar.zst is truncated: {} bytes, the backup wrote {size}",
            d.display(),
            size / 2
        )),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(&t).unwrap().count(),
        0,
        "nothing restored"
    );

    // Truncated without backup.json: the zstd stream ends early.
    std::fs::remove_file(d.join("backup.json")).unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"version":1,"method":{{"kind":"tar"}},"url":"file://{}"}}"#,
            d.display()
        ),
    )
    .unwrap();
    let e = err(&run(Command::new(restore_bin())
        .args(["restore", "--target"])
        .arg(&t)
        .args(["--config"])
        .arg(&config)));
    assert!(
        e.contains(&format!(
            "backup {}/backup.tar.zst is truncated",
            d.display()
        )),
        "{e}"
    );

    // Bytes changed in the middle, size unchanged: zstd's frame checksum or the SHA-256
    // catches it, and the error says the file is corrupt.
    let (d, t) = copy("corrupt");
    let mut bytes = std::fs::read(d.join("backup.tar.zst")).unwrap();
    for b in &mut bytes[(size / 2) as usize..(size / 2) as usize + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(d.join("backup.tar.zst"), &bytes).unwrap();
    let e = err(&restore(&d, &t));
    assert!(
        e.contains(&format!("backup {}/backup.tar.zst is corrupt", d.display())),
        "{e}"
    );

    // Only the checksum file wrong: the SHA-256 check names both digests.
    let (d, t) = copy("badsum");
    std::fs::write(
        d.join("backup.tar.zst.sha256"),
        format!("{}  backup.tar.zst\n", "0".repeat(64)),
    )
    .unwrap();
    let e = err(&restore(&d, &t));
    assert!(
        e.contains(&format!(
            "backup {}/backup.tar.zst is corrupt: SHA-256 ",
            d.display()
        )),
        "{e}"
    );
    assert!(e.contains(&format!("expected {}", "0".repeat(64))), "{e}");
}

#[test]
fn backup_wrong_url_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let l = layout(tmp.path());
    for (url, want) in [
        ("/srv/backup", "backup URL \"/srv/backup\": not a URL"),
        (
            "file://srv/backup",
            "backup URL \"file://srv/backup\": file URLs need an absolute directory",
        ),
        ("ftp://host/dir", "unknown scheme \"ftp\""),
        (
            "iso",
            "backup URL iso: a backup inside the ISO is made with the ISO: rear-mkimage --output iso --backup --backup-url iso",
        ),
    ] {
        let o = run(mkimage()
            .args(["backup", "--layout"])
            .arg(&l)
            .arg("--root")
            .arg(&src)
            .args(["--backup-url", url]));
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{url}: {e}");
    }
    let o = run(Command::new(restore_bin())
        .args([
            "restore",
            "--backup-url",
            "file:///nonexistent/rear",
            "--target",
        ])
        .arg(tmp.path()));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("backup directory /nonexistent/rear not found"),
        "{e}"
    );
    let o = run(Command::new(restore_bin())
        .args([
            "restore",
            "--config",
            "/nonexistent/backup.json",
            "--target",
        ])
        .arg(tmp.path()));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("/nonexistent/backup.json: No such file"), "{e}");
}

/// Backs up and restores `small_tree` with a recipe and compares the trees.
fn recipe_round_trip(method: &str, env: &[(&str, &Path)]) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, dst) = (
        tmp.path().join("src"),
        tmp.path().join("out"),
        tmp.path().join("dst"),
    );
    small_tree(&src);
    std::fs::create_dir_all(&dst).unwrap();
    let pw = tmp.path().join("password");
    std::fs::write(&pw, "test-password\n").unwrap();
    let home = tmp.path().join("home");
    let with_env = |c: &mut Command| {
        c.env("RESTIC_PASSWORD_FILE", &pw)
            .env("RESTIC_CACHE_DIR", home.join("restic-cache"))
            .env("BORG_BASE_DIR", &home);
        for (k, v) in env {
            c.env(k, v);
        }
    };
    let l = layout(tmp.path());
    let mut c = mkimage();
    c.args(["backup", "--layout"])
        .arg(&l)
        .arg("--root")
        .arg(&src)
        .arg("--backup-url")
        .arg(format!("file://{}", out.display()))
        .args(["--backup-method", method]);
    with_env(&mut c);
    ok(&run(&mut c));
    // A second run goes into the same repository (init is skipped).
    sh("printf new > etc/added; touch -d '2006-01-01' etc", &src);
    ok(&run(&mut c));
    let mut c = Command::new(restore_bin());
    c.arg("restore")
        .arg("--backup-url")
        .arg(format!("file://{}", out.display()))
        .arg("--target")
        .arg(&dst)
        .args(["--config", "/nonexistent"]);
    with_env(&mut c);
    ok(&run(&mut c));
    assert_eq!(tree(&src), tree(&dst), "{method}");
    assert_eq!(
        std::fs::read(src.join("var/blob")).unwrap(),
        std::fs::read(dst.join("var/blob")).unwrap()
    );
}

#[test]
fn recipe_restic_backs_up_and_restores() {
    if crate::tools::need(&["restic"]) {
        recipe_round_trip("restic", &[]);
    }
}

#[test]
fn recipe_borg_backs_up_and_restores() {
    if crate::tools::need(&["borg"]) {
        recipe_round_trip("borg", &[]);
    }
}

#[test]
fn recipe_rsync_backs_up_and_restores() {
    if crate::tools::need(&["rsync"]) {
        recipe_round_trip("rsync", &[]);
    }
}
