//! The last stage of a build: the output files, staged under temporary names and put in
//! place together (`rear_sys::atomic`), so a failed build leaves nothing behind.

use super::*;

/// Files being written into the output directory under temporary names.
pub(super) struct Outputs {
    dir: PathBuf,
    pending: Vec<Staged>,
}

impl Outputs {
    pub(super) fn new(dir: &Path) -> Self {
        Outputs {
            dir: dir.to_path_buf(),
            pending: Vec::new(),
        }
    }

    /// A temporary file for the output `name`.
    pub(super) fn stage(&self, name: &str) -> Result<Staged, Error> {
        let path = self.dir.join(name);
        Staged::new(&path).map_err(|error| Error::Output { path, error })
    }

    /// Writes one output to a temporary file in the output directory.
    pub(super) fn create<T>(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tmp = self.stage(name)?;
        let value = {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
            let v = write(&mut w)?;
            w.flush().map_err(|error| Error::Output {
                path: self.dir.join(name),
                error,
            })?;
            v
        };
        self.pending.push(tmp);
        Ok(value)
    }

    /// Lets `write` make one output at a temporary path in the output directory (for writers
    /// that need a path, such as the sparse USB image).
    pub(super) fn create_at<T>(
        &mut self,
        name: &str,
        write: impl FnOnce(&Path) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tmp = self.stage(name)?;
        let value = write(tmp.tmp_path())?;
        self.pending.push(tmp);
        Ok(value)
    }

    /// Hashes every pending file, writes SHA256SUMS, then syncs and renames all into place.
    pub(super) fn commit(self) -> Result<Vec<Artefact>, Error> {
        let mut sums = String::new();
        let mut artefacts = Vec::new();
        for tmp in &self.pending {
            let path = tmp.path().to_path_buf();
            let io = |error| Error::Output {
                path: path.clone(),
                error,
            };
            // Opened anew: a writer given the path may have replaced the file.
            let file = std::fs::File::open(tmp.tmp_path()).map_err(io)?;
            let (size, sha256) = hash_file(file).map_err(io)?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let _ = writeln!(sums, "{sha256}  {name}");
            artefacts.push(Artefact {
                path: path.clone(),
                size,
                sha256,
            });
        }
        let sums_tmp = self.stage("SHA256SUMS")?;
        sums_tmp
            .file()
            .write_all(sums.as_bytes())
            .map_err(|error| Error::Output {
                path: sums_tmp.path().to_path_buf(),
                error,
            })?;
        let mut all = self.pending;
        all.push(sums_tmp);
        rear_sys::atomic::commit_all(all, 0o644).map_err(|e| Error::Output {
            path: e.path,
            error: e.error,
        })?;
        Ok(artefacts)
    }
}

/// Size and hex SHA-256 of a file, read in blocks (a USB image may be gigabytes).
fn hash_file(mut file: std::fs::File) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}
