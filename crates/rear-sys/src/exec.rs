//! The only place that starts external programs.
//!
//! Every command is logged with its argv before it runs; a program that is not installed is
//! [`Error::ToolMissing`] (with the package to install when the caller knows it); a failure
//! carries the argv, the exit status and the tail of stderr, so the one error line the operator
//! sees says what ran and what it said.

use std::ffi::OsString;
use std::io;
use std::process::{Command, Output, Stdio};

/// How many bytes of stderr an error keeps.
const STDERR_TAIL: usize = 2000;

/// Errors from running a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program is not installed.
    #[error("{program}: not found{}", .package.as_ref().map(|p| format!(" (install the package {p})")).unwrap_or_default())]
    ToolMissing {
        /// The program that was asked for.
        program: String,
        /// The package that provides it, when known.
        package: Option<String>,
    },
    /// The program could not be started for another reason.
    #[error("{argv}: {error}")]
    Spawn {
        /// The command line, shell-quoted.
        argv: String,
        /// What the kernel said.
        error: io::Error,
    },
    /// The program ran and failed.
    #[error("{argv} failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        /// The command line, shell-quoted.
        argv: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// The end of what it wrote to stderr, trimmed.
        stderr: String,
    },
}

/// The command line of `cmd`, quoted where needed, for logs and errors.
pub fn argv_string(cmd: &Command) -> String {
    let mut parts: Vec<OsString> = vec![cmd.get_program().to_os_string()];
    parts.extend(cmd.get_args().map(|a| a.to_os_string()));
    parts
        .iter()
        .map(|p| {
            let s = p.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with stdout and stderr captured; a non-zero exit is an error.
///
/// `package` names what installs the program, for the error when it is missing.
pub fn run(cmd: &mut Command, package: Option<&str>) -> Result<Output, Error> {
    let argv = argv_string(cmd);
    log::debug!("run: {argv}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| spawn_error(cmd, argv.clone(), package, error))?;
    if !out.status.success() {
        return Err(Error::Failed {
            argv,
            status: out.status,
            stderr: tail(&out.stderr),
        });
    }
    Ok(out)
}

/// Runs `cmd` like [`run`], writing `input` to its stdin (then closing it).
///
/// The input is written from another thread, so a program that answers before it has read
/// everything cannot deadlock on a full pipe.
pub fn run_with_input(
    cmd: &mut Command,
    input: &[u8],
    package: Option<&str>,
) -> Result<Output, Error> {
    use std::io::Write as _;
    let argv = argv_string(cmd);
    log::debug!("run: {argv} (with {} bytes on stdin)", input.len());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| spawn_error(cmd, argv.clone(), package, error))?;
    let stdin = child.stdin.take();
    let out = std::thread::scope(|s| {
        let writer = s.spawn(move || {
            // A program that exits without reading all of it gets EPIPE here; its exit status
            // below says what went wrong, so the write error itself is not reported.
            if let Some(mut w) = stdin {
                let _ = w.write_all(input);
            }
        });
        let out = child.wait_with_output();
        let _ = writer.join();
        out
    })
    .map_err(|error| Error::Spawn {
        argv: argv.clone(),
        error,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            argv,
            status: out.status,
            stderr: tail(&out.stderr),
        });
    }
    Ok(out)
}

/// A program started by [`spawn`] whose stdin and/or stdout the caller streams (a tar
/// archive through an in-process compressor); stderr is collected in the background so a
/// failure still carries its tail.
#[derive(Debug)]
pub struct Streaming {
    child: std::process::Child,
    argv: String,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// Starts `cmd` with stdin and stdout piped to the caller (take them with
/// [`Streaming::stdin`] and [`Streaming::stdout`]) and stderr collected.
///
/// `package` names what installs the program, for the error when it is missing.
pub fn spawn(cmd: &mut Command, package: Option<&str>) -> Result<Streaming, Error> {
    use std::io::Read;
    let argv = argv_string(cmd);
    log::debug!("run: {argv}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| spawn_error(cmd, argv.clone(), package, error))?;
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            // Only the tail goes into an error; a chatty program must not grow memory.
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 4 * STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
            kept
        })
    });
    Ok(Streaming {
        child,
        argv,
        stderr,
    })
}

impl Streaming {
    /// The command line, for messages.
    pub fn argv(&self) -> &str {
        &self.argv
    }

    /// The program's stdin (once); dropping it tells the program the input ended.
    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The program's stdout (once).
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Stops the program (when the caller gives up on the stream) and reaps it.
    pub fn kill(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
    }

    /// Waits for the program. An exit code in `ok` (besides 0) is accepted and returned with
    /// the stderr tail, for tools whose code 1 is a warning (GNU tar: "file changed as we
    /// read it"); any other failure is [`Error::Failed`].
    pub fn wait(mut self, ok: &[i32]) -> Result<(std::process::ExitStatus, String), Error> {
        drop(self.child.stdin.take());
        let status = self.child.wait().map_err(|error| Error::Spawn {
            argv: self.argv.clone(),
            error,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .map(|b| tail(&b))
            .unwrap_or_default();
        let accepted = status.success() || status.code().is_some_and(|c| ok.contains(&c));
        if !accepted {
            return Err(Error::Failed {
                argv: self.argv.clone(),
                status,
                stderr,
            });
        }
        Ok((status, stderr))
    }
}

fn spawn_error(cmd: &Command, argv: String, package: Option<&str>, error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::NotFound {
        Error::ToolMissing {
            program: cmd.get_program().to_string_lossy().into_owned(),
            package: package.map(str::to_string),
        }
    } else {
        Error::Spawn { argv, error }
    }
}

/// The last [`STDERR_TAIL`] bytes of `bytes` as trimmed text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_failure_carries_argv_and_stderr() {
        let e = run(
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
            None,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("sh -c 'echo oops >&2; exit 3' failed"),
            "{text}"
        );
        assert!(text.ends_with(": oops"), "{text}");
    }

    #[test]
    fn run_missing_program_names_the_package() {
        let e = run(&mut Command::new("rear-no-such-tool"), Some("rear-tools")).unwrap_err();
        assert!(matches!(e, Error::ToolMissing { .. }));
        assert_eq!(
            e.to_string(),
            "rear-no-such-tool: not found (install the package rear-tools)"
        );
    }

    #[test]
    fn run_with_input_feeds_stdin() {
        let out = run_with_input(
            Command::new("sh").args(["-c", "tr a-z A-Z"]),
            b"mail\n",
            None,
        )
        .unwrap();
        assert_eq!(out.stdout, b"MAIL\n");
        let e = run_with_input(
            Command::new("sh").args(["-c", "cat >/dev/null; echo no >&2; exit 75"]),
            b"x",
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with("failed (exit status: 75): no"),
            "{e}"
        );
    }

    #[test]
    fn spawn_streams_both_ways_and_keeps_stderr() {
        use std::io::{Read, Write};
        let mut p = spawn(
            Command::new("sh").args(["-c", "tr a-z A-Z; echo warned >&2; exit 1"]),
            None,
        )
        .unwrap();
        let mut stdin = p.stdin().unwrap();
        let mut stdout = p.stdout().unwrap();
        stdin.write_all(b"abc").unwrap();
        drop(stdin);
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        assert_eq!(out, "ABC");
        let (status, stderr) = p.wait(&[1]).unwrap();
        assert_eq!((status.code(), stderr.as_str()), (Some(1), "warned"));
        let p = spawn(
            Command::new("sh").args(["-c", "echo bad >&2; exit 2"]),
            None,
        )
        .unwrap();
        let e = p.wait(&[1]).unwrap_err();
        assert!(
            e.to_string().ends_with("failed (exit status: 2): bad"),
            "{e}"
        );
    }

    #[test]
    fn run_success_returns_stdout() {
        let out = run(Command::new("sh").args(["-c", "echo hi"]), None).unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
