//! The LUKS passphrase, asked on the terminal when no key file is given.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Error;

/// Asks for a LUKS passphrase twice on the terminal without echo and writes it to a key file
/// in `dir` (a tmpfs in the rescue system) readable only by root. The caller removes it.
pub fn ask_passphrase(dir: &Path) -> Result<PathBuf, Error> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| Error::Io { path, error }
    };
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| Error::Io {
        path: "/dev/stdin".into(),
        error: e.into(),
    })?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let ask = |prompt: &str| -> Result<String, Error> {
        eprint!("{prompt}");
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        let mut line = String::new();
        let r = stdin.read_line(&mut line);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        r.map_err(io(Path::new("/dev/stdin")))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    loop {
        let a = ask("LUKS passphrase for the recreated containers: ")?;
        let b = ask("Again: ")?;
        if a == b && !a.is_empty() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let path = dir.join("luks.key");
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(a.as_bytes()).map_err(io(&path))?;
            return Ok(path);
        }
        eprintln!("The passphrases differ or are empty; again.");
    }
}
