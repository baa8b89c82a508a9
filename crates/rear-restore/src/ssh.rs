//! SSH access to the rescue system: what PID 1 does before it starts `sshd` (boot side); the
//! configuration the build writes is [`rear_model::rescue::sshd_config`].
//!
//! The host's `/etc/ssh/sshd_config` and its private host keys are never copied: the image
//! gets a minimal configuration (key login for root only, no PAM, no passwords), and at boot
//! PID 1 makes fresh host keys ([`setup_commands`]: Ed25519 and
//! ECDSA, which take milliseconds; RSA would take seconds under emulation), then runs
//! `sshd -D -e` and restarts it when it dies ([`super::init`]).
//!
//! `/etc/passwd` and `/etc/group` are the host's (the base recipe copies them): they carry
//! root and, on a host with an OpenSSH server, its privilege separation user `sshd`. Before
//! the first start [`prepare`] makes sure of both anyway ([`fix_passwd`]: an `sshd` entry is
//! appended when missing, root's shell is set to `/bin/sh` when the host's is not in the
//! image) and creates `/run/sshd` (the privilege separation directory) and `/var/empty`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rear_model::rescue::{AUTHORIZED_KEYS, HOST_KEYS, SSHD_CONFIG as CONFIG};

/// Where sshd writes its pid.
pub const PID_FILE: &str = "/run/sshd.pid";
/// Where sshd's own log (`-e`: stderr) goes.
pub const LOG: &str = "/var/log/sshd.log";
/// Where `sshd` may be, in order.
pub const SSHD_PATHS: [&str; 3] = ["/usr/sbin/sshd", "/sbin/sshd", "/usr/bin/sshd"];

/// Errors preparing the rescue system for sshd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
}

/// The commands PID 1 runs before the first start of sshd, in order: fresh host keys.
pub fn setup_commands(keygen: &Path) -> Vec<Vec<String>> {
    HOST_KEYS
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(ty, file)| {
            let mut argv = vec![keygen.display().to_string(), "-q".into(), "-t".into()];
            argv.push((*ty).into());
            argv.extend(["-N".into(), String::new(), "-f".into(), (*file).into()]);
            argv
        })
        .collect()
}

/// The command line of the supervised sshd: foreground, log to stderr.
pub fn sshd_command(sshd: &Path) -> Vec<String> {
    vec![
        sshd.display().to_string(),
        "-D".into(),
        "-e".into(),
        "-f".into(),
        CONFIG.into(),
    ]
}

/// The first of `candidates` below `root` that exists.
pub fn find(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(|c| root.join(c.trim_start_matches('/')))
        .find(|p| p.is_file())
}

/// `/etc/passwd` with an `sshd` entry and a root shell that exists; `None` when nothing needs
/// changing. `exists` says whether a path exists in the rescue system. Pure.
pub fn fix_passwd(text: &str, exists: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut changed = false;
    let mut lines: Vec<String> = Vec::new();
    let mut uids: Vec<u32> = Vec::new();
    let mut has_sshd = false;
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if let Some(uid) = f.get(2).and_then(|u| u.parse().ok()) {
            uids.push(uid);
        }
        match f.first() {
            Some(&"sshd") => has_sshd = true,
            Some(&"root") if f.len() == 7 && !exists(f[6]) => {
                f[6] = "/bin/sh";
                changed = true;
                lines.push(f.join(":"));
                continue;
            }
            _ => {}
        }
        lines.push(line.to_owned());
    }
    if !has_sshd {
        // A free system uid below 1000, as adduser --system would pick.
        let uid = (100..1000).find(|u| !uids.contains(u)).unwrap_or(999);
        lines.push(format!("sshd:x:{uid}:65534::/run/sshd:/usr/sbin/nologin"));
        changed = true;
    }
    changed.then(|| {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_owned(),
        error,
    }
}

/// Makes the rescue system (below `root`, `/` at boot) ready for sshd: directories,
/// `/etc/passwd` ([`fix_passwd`]), modes of root's `.ssh`. Returns notes for the console.
pub fn prepare(root: &Path) -> Result<Vec<String>, Error> {
    let mut notes = Vec::new();
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    for (dir, mode) in [
        ("/run/sshd", 0o755),
        ("/var/empty", 0o755),
        ("/etc/ssh", 0o755),
    ] {
        let p = at(dir);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))?;
    }
    let passwd = at("/etc/passwd");
    let text = match fs::read_to_string(&passwd) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => "root:x:0:0:root:/root:/bin/sh\n".into(),
        Err(e) => return Err(io_err(&passwd)(e)),
    };
    if let Some(fixed) = fix_passwd(&text, &|p| at(p).exists()) {
        fs::write(&passwd, fixed).map_err(io_err(&passwd))?;
    }
    let keys = at(AUTHORIZED_KEYS);
    if keys.is_file() {
        for (p, mode) in [(at("/root/.ssh"), 0o700), (keys, 0o600)] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))?;
        }
    } else {
        notes.push(format!(
            "no {AUTHORIZED_KEYS} in the image: nobody can log in over ssh (rear-mkimage --ssh-authorized-keys FILE)"
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::rescue::SFTP_PATHS;

    #[test]
    fn setup_commands_keygen_per_missing_key() {
        let cmds = setup_commands(Path::new("/usr/bin/ssh-keygen"));
        // The test host's own /etc/ssh keys may exist; each command is well formed.
        for c in &cmds {
            assert_eq!(c[0], "/usr/bin/ssh-keygen");
            assert_eq!(&c[1..3], &["-q", "-t"]);
            assert_eq!(c[4..7], ["-N".to_owned(), String::new(), "-f".to_owned()]);
        }
        assert_eq!(
            sshd_command(Path::new("/usr/sbin/sshd")),
            vec!["/usr/sbin/sshd", "-D", "-e", "-f", CONFIG]
        );
    }

    #[test]
    fn fix_passwd_adds_sshd_and_fixes_root_shell() {
        let text = "root:x:0:0:root:/root:/usr/bin/zsh\ndaemon:x:1:1::/:/usr/sbin/nologin\nsys:x:100:3::/:/bin/false\n";
        let fixed = fix_passwd(text, &|p| p == "/bin/sh").unwrap();
        assert_eq!(
            fixed,
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\nsys:x:100:3::/:/bin/false\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n"
        );
    }

    #[test]
    fn fix_passwd_leaves_good_file() {
        let text =
            "root:x:0:0:root:/root:/bin/bash\nsshd:x:102:65534::/run/sshd:/usr/sbin/nologin\n";
        assert_eq!(fix_passwd(text, &|_| true), None);
    }

    #[test]
    fn prepare_makes_dirs_and_passwd() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::write(d.path().join("bin/sh"), "").unwrap();
        fs::write(d.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let notes = prepare(d.path()).unwrap();
        assert!(notes[0].contains("authorized_keys"), "{notes:?}");
        assert!(d.path().join("run/sshd").is_dir());
        assert!(d.path().join("var/empty").is_dir());
        let passwd = fs::read_to_string(d.path().join("etc/passwd")).unwrap();
        assert!(passwd.contains("\nsshd:x:100:65534:"), "{passwd}");
        fs::create_dir_all(d.path().join("root/.ssh")).unwrap();
        fs::write(
            d.path().join("root/.ssh/authorized_keys"),
            "ssh-ed25519 AAAA x\n",
        )
        .unwrap();
        assert!(prepare(d.path()).unwrap().is_empty());
        let mode = fs::metadata(d.path().join("root/.ssh/authorized_keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn find_first_existing() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("usr/libexec/openssh")).unwrap();
        fs::write(d.path().join("usr/libexec/openssh/sftp-server"), "").unwrap();
        assert_eq!(
            find(d.path(), &SFTP_PATHS),
            Some(d.path().join("usr/libexec/openssh/sftp-server"))
        );
        assert_eq!(find(d.path(), &SSHD_PATHS), None);
    }
}
