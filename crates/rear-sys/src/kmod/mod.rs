//! Kernel module metadata: depmod's files (modules.dep, .alias, .softdep, .builtin) parsed and
//! written, shared by the build (which modules go in) and the rescue system (which to load).
//!
//! Stage: used by `resolve::kmod` at build time and by [`load`] at boot. Input: the
//! texts of `/lib/modules/<kver>/modules.*` ([`IndexFiles`]). Output: a [`ModuleIndex`] that
//! answers "which module for this modalias", "in which order to load these", and that writes
//! depmod's files (text and kmod's binary tries) for a subset of its modules.
//!
//! This part runs inside the statically linked rescue system too, so it uses only `std` (no
//! rayon, no goblin): reading `.ko` files is the resolver's job.

pub mod binindex;
mod depmod;
mod index;
pub mod load;
mod order;
pub mod sysfs;

use std::path::PathBuf;

pub use index::{IndexFiles, Lookup, Module, ModuleIndex, module_file};
pub use order::Step;

/// Errors from reading or writing depmod's files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a depmod file that does not parse.
    #[error("{}:{line}: {reason}", .file.display())]
    Parse {
        /// The file (host path, or the bare file name when parsed from text).
        file: PathBuf,
        /// Line number, from 1 (for `modules.builtin.modinfo`: the entry number).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A depmod file that could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A module asked for by name that `modules.dep` does not list.
    #[error("module {0} is not in modules.dep")]
    UnknownModule(String),
    /// A subset to write that lacks a dependency of one of its modules.
    #[error("module {module} needs {dependency}, which is not in the selected set")]
    NotClosed {
        /// The module whose dependency is missing.
        module: String,
        /// The missing dependency.
        dependency: String,
    },
    /// A key or value that kmod's binary index cannot hold (only 7-bit ASCII, no NUL).
    #[error("{file}: {text:?} has a byte kmod's index cannot store (only 7-bit ASCII)")]
    NotAscii {
        /// The index file being written.
        file: String,
        /// The offending key or value.
        text: String,
    },
}

/// A module name as kmod compares it: `-` replaced by `_` (`crc32c-intel` -> `crc32c_intel`).
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path from `modules.dep` or `modules.builtin`: the file name up to its
/// first `.`, normalised (`kernel/arch/x86/crypto/crc32c-intel.ko.xz` -> `crc32c_intel`), as
/// kmod's `path_to_modname` does.
pub fn modname_from_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    normalize_name(stem)
}

/// Compression suffixes a module file may carry after `.ko`.
pub const COMPRESSED_SUFFIXES: [&str; 3] = [".xz", ".zst", ".gz"];

/// The path a module gets in the image, where modules are stored decompressed: a trailing
/// `.xz`, `.zst` or `.gz` after `.ko` is dropped (`a/b.ko.zst` -> `a/b.ko`).
pub fn uncompressed_path(path: &str) -> &str {
    for suffix in COMPRESSED_SUFFIXES {
        if let Some(stem) = path.strip_suffix(suffix)
            && stem.ends_with(".ko")
        {
            return stem;
        }
    }
    path
}

/// An alias pattern as kmod stores and compares it: `-` becomes `_` outside `[...]`.
///
/// `None` for an unmatched bracket, which depmod skips with a warning (`underscores2` in
/// kmod's `tools/depmod.c`).
pub fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut chars = alias.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                out.push('[');
                loop {
                    let c = chars.next()?;
                    out.push(c);
                    if c == ']' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modname_from_path_strips_dirs_suffixes_and_dashes() {
        assert_eq!(
            modname_from_path("kernel/arch/x86/crypto/crc32c-intel.ko.xz"),
            "crc32c_intel"
        );
        assert_eq!(modname_from_path("virtio_blk.ko"), "virtio_blk");
    }

    #[test]
    fn uncompressed_path_drops_compression_only_after_ko() {
        assert_eq!(uncompressed_path("a/b.ko.zst"), "a/b.ko");
        assert_eq!(uncompressed_path("a/b.ko.xz"), "a/b.ko");
        assert_eq!(uncompressed_path("a/b.ko"), "a/b.ko");
        assert_eq!(uncompressed_path("a/b.xz"), "a/b.xz");
    }

    #[test]
    fn normalize_alias_keeps_brackets() {
        assert_eq!(
            normalize_alias("platform:gpio-keys[a-c]x-y").as_deref(),
            Some("platform:gpio_keys[a-c]x_y")
        );
        assert_eq!(normalize_alias("a]b"), None);
        assert_eq!(normalize_alias("a[b"), None);
    }
}
