//! Recipes: what goes into the rescue image, per concern (`recipes/*.toml`).
//!
//! Input: recipe names or files from the command line. Output: typed [`Recipe`] values whose
//! items the closure stage turns into manifest entries. A built-in recipe is embedded in the
//! binary; a file of the same name in `/etc/rear/recipes/` (on the build machine) overrides it.
//! The format is documented in `docs/recipes.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The recipes shipped with the tool, embedded at build time: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("base", include_str!("../../../../recipes/base.toml")),
    ("network", include_str!("../../../../recipes/network.toml")),
    ("ssh", include_str!("../../../../recipes/ssh.toml")),
];

/// The recipes every build uses unless told otherwise.
pub const DEFAULT: &[&str] = &["base", "network"];

/// Where a site's own recipes live; a file here overrides a built-in recipe of the same name.
pub const SITE_DIR: &str = "/etc/rear/recipes";

/// Errors from finding and parsing recipes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither a file nor a known recipe name.
    #[error(
        "recipe {name:?} not found (looked for {}/{name}.toml and the built-in recipes: {})",
        SITE_DIR,
        builtin_names()
    )]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The recipe file could not be read.
    #[error("reading recipe {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The recipe is not valid TOML or has unknown keys.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// The file (or `builtin:NAME`).
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One item of a recipe list: a bare string is a required item, a table can mark it optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Item {
    /// `"bash"`: required.
    Name(String),
    /// `{ name = "vim", optional = true }`.
    Table {
        /// The program, path, soname, module or firmware name.
        name: String,
        /// A missing optional item is skipped with a note instead of failing the build.
        #[serde(default)]
        optional: bool,
    },
}

impl Item {
    /// The name of the item.
    pub fn name(&self) -> &str {
        match self {
            Item::Name(n) | Item::Table { name: n, .. } => n,
        }
    }

    /// Whether a missing item is fine.
    pub fn optional(&self) -> bool {
        matches!(self, Item::Table { optional: true, .. })
    }
}

/// A group of alternative programs: `["vim.tiny", "nano"]` (one of them is required) or
/// `{ names = ["vim.tiny", "nano"], optional = true }` (none is only a warning).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Group {
    /// Required: one must exist.
    Names(Vec<String>),
    /// With a flag.
    Table {
        /// The alternatives, in order of preference.
        names: Vec<String>,
        /// Whether a host without any of them still builds (with a warning).
        #[serde(default)]
        optional: bool,
    },
}

impl Group {
    /// The alternatives.
    pub fn names(&self) -> &[String] {
        match self {
            Group::Names(n) | Group::Table { names: n, .. } => n,
        }
    }

    /// Whether none of them is fine.
    pub fn optional(&self) -> bool {
        matches!(self, Group::Table { optional: true, .. })
    }
}

/// A recipe as written in TOML. Every list may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    /// One line saying what the recipe is for.
    #[serde(default)]
    pub description: String,
    /// Programs, looked up on the sysroot's `PATH` (or given as absolute paths).
    #[serde(default)]
    pub programs: Vec<Item>,
    /// Programs of which any one is enough; each group is a list of alternatives, and a group
    /// none of whose members exists is an error unless the whole group is optional (empty
    /// groups are ignored). Example: an editor: `["vim.tiny", "vim", "vi", "nano"]`.
    #[serde(default)]
    pub any_of: Vec<Group>,
    /// Files and directories (absolute host paths; directories are copied whole; `*`, `?` and
    /// `[...]` globs are expanded).
    #[serde(default)]
    pub files: Vec<Item>,
    /// Shared libraries loaded with `dlopen` (no `DT_NEEDED` names them), by soname.
    #[serde(default)]
    pub libraries: Vec<Item>,
    /// Kernel modules by name or alias, added to the module selection.
    #[serde(default)]
    pub modules: Vec<Item>,
    /// Firmware files relative to `/lib/firmware`.
    #[serde(default)]
    pub firmware: Vec<Item>,
}

/// A recipe with its name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Its name (file stem).
    pub name: String,
    /// The file it was read from, or `builtin:NAME`.
    pub origin: String,
    /// Its content.
    pub file: RecipeFile,
}

impl Recipe {
    /// Parses recipe text; errors give origin, line and column.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Recipe, Error> {
        let file: RecipeFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            Error::Parse {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        Ok(Recipe {
            name: name.to_string(),
            origin: origin.to_string(),
            file,
        })
    }

    /// Loads a recipe given as a file path (anything with a `/` or ending in `.toml`) or as a
    /// name: `SITE_DIR/NAME.toml` first, then the built-in recipe.
    pub fn load(spec: &str) -> Result<Recipe, Error> {
        Self::load_from(spec, Path::new(SITE_DIR))
    }

    /// [`Recipe::load`] with another site directory (for tests).
    pub fn load_from(spec: &str, site_dir: &Path) -> Result<Recipe, Error> {
        if spec.contains('/') || spec.ends_with(".toml") {
            let path = PathBuf::from(spec);
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            return Self::read(name.as_deref().unwrap_or(spec), &path);
        }
        let site = site_dir.join(format!("{spec}.toml"));
        if site.is_file() {
            return Self::read(spec, &site);
        }
        match BUILTIN.iter().find(|(n, _)| *n == spec) {
            Some((name, text)) => Recipe::parse(name, &format!("builtin:{name}"), text),
            None => Err(Error::NotFound {
                name: spec.to_string(),
            }),
        }
    }

    fn read(name: &str, path: &Path) -> Result<Recipe, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Recipe::parse(name, &path.display().to_string(), &text)
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_items_required_and_optional() {
        let r = Recipe::parse(
            "t",
            "t.toml",
            r#"
programs = ["bash", { name = "vim", optional = true }]
libraries = ["libgcc_s.so.1"]
any_of = [["vim.tiny", "nano"], { names = ["mg", "ed"], optional = true }]
"#,
        )
        .unwrap();
        assert_eq!(r.file.programs[0].name(), "bash");
        assert!(!r.file.programs[0].optional());
        assert!(r.file.programs[1].optional());
        assert_eq!(r.file.any_of[0].names(), ["vim.tiny", "nano"]);
        assert!(!r.file.any_of[0].optional());
        assert_eq!(r.file.any_of[1].names(), ["mg", "ed"]);
        assert!(r.file.any_of[1].optional());
    }

    #[test]
    fn parse_error_names_file_line_and_column() {
        let e = Recipe::parse(
            "t",
            "/etc/rear/recipes/t.toml",
            "description = \"x\"\nprograms = [bash]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/etc/rear/recipes/t.toml:2:13: "), "{e}");
    }

    #[test]
    fn parse_rejects_unknown_keys() {
        let e = Recipe::parse("t", "t.toml", "program = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:1:1: unknown field `program`"), "{e}");
    }

    #[test]
    fn load_site_file_overrides_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "description = \"site\"\n").unwrap();
        let r = Recipe::load_from("base", dir.path()).unwrap();
        assert_eq!(r.file.description, "site");
        let empty = tempfile::tempdir().unwrap();
        let r = Recipe::load_from("base", empty.path()).unwrap();
        assert_eq!(r.origin, "builtin:base");
    }

    #[test]
    fn load_unknown_name_lists_builtins() {
        let empty = tempfile::tempdir().unwrap();
        let e = Recipe::load_from("nosuch", empty.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nosuch") && e.contains("built-in recipes: base"),
            "{e}"
        );
    }

    #[test]
    fn builtin_recipes_parse() {
        for (name, text) in BUILTIN {
            Recipe::parse(name, name, text).unwrap();
        }
    }
}
