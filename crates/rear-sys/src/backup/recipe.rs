//! Backup methods driven by a recipe (`recipes/backup/NAME.toml`): other backup software
//! (restic, borg, rsync, a vendor's agent) described as what goes into the rescue image and
//! the commands for backup, restore and check. The format is documented in `docs/backup.md`.
//!
//! Commands are argv lists, run through [`crate::exec`] without a shell. Placeholders in
//! arguments, `cwd` and `env` values: `${path}` (the backup directory or repository: on the
//! host the `file://` path, in the rescue system where it is mounted), `${root}` (the tree
//! backed up, `/` normally), `${target}` (where restore writes, `/mnt/local`), `${hostname}`.
//! An argument that is exactly `${sources}` becomes the file systems to back up, relative to
//! `${root}` (`.`, `./boot`); exactly `${excludes}` becomes the section's `exclude` template
//! once per exclude pattern, with `${pattern}` the absolute pattern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::{BackupJob, BackupMethod, BackupReport, Error, Info, RestoreReport};
use crate::exec;
use rear_model::recipe::{Recipe, RecipeFile};

/// The backup recipes shipped with the tool: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "restic",
        include_str!("../../../../recipes/backup/restic.toml"),
    ),
    ("borg", include_str!("../../../../recipes/backup/borg.toml")),
    (
        "rsync",
        include_str!("../../../../recipes/backup/rsync.toml"),
    ),
];

/// Where a site's own backup recipes live (overriding built-in ones of the same name).
pub const SITE_DIR: &str = "/etc/rear/recipes/backup";

/// A backup recipe as written in TOML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRecipe {
    /// One line saying what it is.
    #[serde(default)]
    pub description: String,
    /// The package that provides the software, for messages.
    #[serde(default)]
    pub package: String,
    /// What the rescue image needs to run the restore (same keys as an image recipe).
    #[serde(default)]
    pub image: RecipeFile,
    /// Run before `backup` when `init.unless_exists` does not exist (create a repository).
    #[serde(default)]
    pub init: Option<Step>,
    /// Makes the backup.
    pub backup: Step,
    /// Restores the latest backup into `${target}`.
    pub restore: Step,
    /// Checks that the backup is readable and consistent.
    #[serde(default)]
    pub check: Option<Step>,
}

/// One command of a recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment variables; a variable already set in the environment wins, so secrets
    /// such as `RESTIC_PASSWORD_FILE` can be given at run time.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The arguments `${excludes}` stands for, once per pattern (`["--exclude", "${pattern}"]`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Exit codes besides 0 that mean success with warnings.
    #[serde(default)]
    pub ok_codes: Vec<i32>,
    /// `init` only: the file whose presence means the repository exists.
    #[serde(default)]
    pub unless_exists: Option<String>,
}

/// Values for the placeholders.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `${path}`.
    pub path: PathBuf,
    /// `${root}`.
    pub root: PathBuf,
    /// `${target}`.
    pub target: PathBuf,
    /// `${hostname}`.
    pub hostname: String,
    /// `${sources}`.
    pub sources: Vec<String>,
    /// Patterns for `${excludes}`.
    pub excludes: Vec<String>,
}

fn subst(s: &str, v: &Vars) -> String {
    s.replace("${path}", &v.path.to_string_lossy())
        .replace("${root}", &v.root.to_string_lossy())
        .replace("${target}", &v.target.to_string_lossy())
        .replace("${hostname}", &v.hostname)
}

impl Step {
    /// The command with placeholders filled in (pure, for tests).
    pub fn command(&self, v: &Vars) -> Command {
        let mut args = Vec::new();
        for a in &self.argv {
            match a.as_str() {
                "${sources}" => args.extend(v.sources.iter().cloned()),
                "${excludes}" => {
                    for p in &v.excludes {
                        args.extend(
                            self.exclude
                                .iter()
                                .map(|t| subst(t, v).replace("${pattern}", p)),
                        );
                    }
                }
                _ => args.push(subst(a, v)),
            }
        }
        let mut cmd = Command::new(args.first().cloned().unwrap_or_default());
        cmd.args(args.iter().skip(1));
        if let Some(c) = &self.cwd {
            cmd.current_dir(subst(c, v));
        }
        for (k, val) in &self.env {
            if std::env::var_os(k).is_none() {
                cmd.env(k, subst(val, v));
            }
        }
        cmd
    }
}

/// A method run by a recipe.
#[derive(Debug, Clone)]
pub struct RecipeMethod {
    /// The recipe's name.
    pub name: String,
    /// Where it came from (file or `builtin:NAME`), for errors.
    pub origin: String,
    /// Its TOML text (stored in the image's configuration).
    pub text: String,
    /// Its content.
    pub recipe: BackupRecipe,
}

impl RecipeMethod {
    /// Parses recipe text; errors give origin, line and column.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<RecipeMethod, Error> {
        let recipe: BackupRecipe = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    (
                        before.matches('\n').count() + 1,
                        before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                    )
                })
                .unwrap_or((1, 1));
            Error::Recipe {
                origin: origin.to_string(),
                message: format!("{line}:{column}: {}", e.message()),
            }
        })?;
        if recipe.backup.argv.is_empty() || recipe.restore.argv.is_empty() {
            return Err(Error::Recipe {
                origin: origin.to_string(),
                message: "backup.argv and restore.argv must not be empty".into(),
            });
        }
        Ok(RecipeMethod {
            name: name.to_string(),
            origin: origin.to_string(),
            text: text.to_string(),
            recipe,
        })
    }

    /// Loads a recipe by file path (with a `/` or ending in `.toml`) or name
    /// ([`SITE_DIR`]`/NAME.toml`, then the built-in ones).
    pub fn load(spec: &str) -> Result<RecipeMethod, Error> {
        Self::load_from(spec, Path::new(SITE_DIR))
    }

    /// [`RecipeMethod::load`] with another site directory (for tests).
    pub fn load_from(spec: &str, site: &Path) -> Result<RecipeMethod, Error> {
        let read = |name: &str, path: &Path| {
            let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
                path: path.to_path_buf(),
                error,
            })?;
            Self::parse(name, &path.display().to_string(), &text)
        };
        if spec.contains('/') || spec.ends_with(".toml") {
            let path = PathBuf::from(spec);
            let name = path
                .file_stem()
                .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned());
            return read(&name, &path);
        }
        let site_file = site.join(format!("{spec}.toml"));
        if site_file.is_file() {
            return read(spec, &site_file);
        }
        match BUILTIN.iter().find(|(n, _)| *n == spec) {
            Some((name, text)) => Self::parse(name, &format!("builtin:backup/{name}"), text),
            None => Err(Error::UnknownMethod {
                name: spec.to_string(),
                known: std::iter::once("tar")
                    .chain(BUILTIN.iter().map(|(n, _)| *n))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn run(&self, step: &Step, what: &str, v: &Vars) -> Result<String, Error> {
        let mut cmd = step.command(v);
        let out = match exec::spawn(
            &mut cmd,
            Some(&self.recipe.package)
                .filter(|p| !p.is_empty())
                .map(|s| s.as_str()),
        ) {
            Ok(mut child) => {
                drop(child.stdin());
                // stdout is not needed; reading it to the end keeps the program from blocking.
                if let Some(mut o) = child.stdout() {
                    let _ = std::io::copy(&mut o, &mut std::io::sink());
                }
                child.wait(&step.ok_codes)
            }
            Err(e) => Err(e),
        };
        match out {
            Ok((status, stderr)) if !status.success() => Ok(stderr),
            Ok(_) => Ok(String::new()),
            Err(error) => Err(Error::Exec {
                what: format!("{what} ({} recipe {})", self.name, self.origin),
                error,
            }),
        }
    }
}

impl BackupMethod for RecipeMethod {
    fn name(&self) -> &str {
        &self.name
    }

    fn image_recipe(&self) -> Recipe {
        Recipe {
            name: format!("backup-{}", self.name),
            origin: self.origin.clone(),
            file: self.recipe.image.clone(),
        }
    }

    fn backup(&self, job: &BackupJob<'_>) -> Result<BackupReport, Error> {
        let v = Vars {
            path: job.dest.to_path_buf(),
            root: job.root.to_path_buf(),
            target: PathBuf::new(),
            hostname: job.config.hostname.clone(),
            sources: job
                .sources
                .iter()
                .map(|s| {
                    let rel = s.strip_prefix("/").unwrap_or(s);
                    if rel.as_os_str().is_empty() {
                        ".".to_string()
                    } else {
                        format!("./{}", rel.display())
                    }
                })
                .collect(),
            excludes: job.excludes.to_vec(),
        };
        if let Some(init) = &self.recipe.init {
            let exists = init
                .unless_exists
                .as_ref()
                .is_some_and(|f| Path::new(&subst(f, &v)).exists());
            if !exists {
                self.run(init, "initialising the repository", &v)?;
            }
        }
        let warning = self.run(&self.recipe.backup, "backup", &v)?;
        let info = Info {
            version: super::config::CONFIG_VERSION,
            config: job.config.clone(),
            archive: None,
            size: 0,
            sha256: String::new(),
            members: 0,
            bytes: 0,
            raw: 0,
        };
        let staged = vec![super::tar::stage(
            job.dest,
            super::INFO,
            info.to_json().as_bytes(),
        )?];
        super::tar::commit(staged)?;
        Ok(BackupReport {
            dir: job.dest.to_path_buf(),
            archive: None,
            size: 0,
            sha256: None,
            members: 0,
            bytes: 0,
            warnings: if warning.is_empty() {
                vec![]
            } else {
                vec![warning]
            },
        })
    }

    fn restore(&self, dir: &Path, target: &Path, _progress: bool) -> Result<RestoreReport, Error> {
        let v = Vars {
            path: dir.to_path_buf(),
            target: target.to_path_buf(),
            root: PathBuf::from("/"),
            ..Vars::default()
        };
        self.run(&self.recipe.restore, "restore", &v)?;
        Ok(RestoreReport {
            archive: None,
            bytes: 0,
            sha256: None,
        })
    }

    fn check(&self, dir: &Path) -> Result<(), Error> {
        if let Some(step) = &self.recipe.check {
            let v = Vars {
                path: dir.to_path_buf(),
                ..Vars::default()
            };
            self.run(step, "check", &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipes_parse() {
        for (name, _) in BUILTIN {
            let m = RecipeMethod::load_from(name, Path::new("/nonexistent")).unwrap();
            assert!(!m.recipe.image.programs.is_empty(), "{name}");
        }
        let e = RecipeMethod::load_from("bacula", Path::new("/nonexistent")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown backup method \"bacula\" (known: tar, restic, borg, rsync; or a recipe file)"
        );
    }

    #[test]
    fn command_expands_sources_and_excludes() {
        let step = Step {
            argv: ["tool", "--repo", "${path}", "${excludes}", "${sources}"]
                .map(String::from)
                .to_vec(),
            cwd: Some("${root}".into()),
            exclude: ["--exclude", "${pattern}"].map(String::from).to_vec(),
            ..Step::default()
        };
        let v = Vars {
            path: "/srv/repo".into(),
            root: "/".into(),
            sources: vec![".".into(), "./boot".into()],
            excludes: vec!["/var/tmp/*".into()],
            ..Vars::default()
        };
        let cmd = step.command(&v);
        assert_eq!(
            exec::argv_string(&cmd),
            "tool --repo /srv/repo --exclude '/var/tmp/*' . ./boot"
        );
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/")));
    }

    #[test]
    fn parse_errors_name_origin_and_line() {
        let e = RecipeMethod::parse(
            "x",
            "x.toml",
            "[backup]\nargv = [\"a\"]\nbogus = 1\n[restore]\nargv=[\"b\"]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("backup recipe x.toml: 3:1: unknown field `bogus`"),
            "{e}"
        );
    }
}
