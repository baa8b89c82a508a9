//! The lookup stage of a build (before `crate::resolve`): the recipes' programs, libraries, files and kernel modules
//! found on the host, each item missing from it an error naming its recipe.

use super::*;

/// Selects and reads the kernel modules (`--modules` plus the recipes' `modules`).
pub(super) fn resolve_modules(
    sys: &Sysroot,
    kernel: &Kernel,
    selection: Selection,
    recipes: &[Recipe],
) -> Result<ModuleSet, Error> {
    let requests: Vec<resolve::kmod::Request> = recipes
        .iter()
        .flat_map(|r| {
            r.file.modules.iter().map(|m| resolve::kmod::Request {
                name: m.name().to_string(),
                recipe: r.origin.clone(),
                optional: m.optional(),
            })
        })
        .collect();
    if kernel.modules_dir.is_none() && selection != Selection::None {
        return Err(Error::NoModules {
            kernel: kernel.release.clone(),
        });
    }
    Ok(resolve::kmod::resolve(
        sys,
        &kernel.release,
        selection,
        &requests,
    )?)
}

/// Puts the modules, depmod's files for them and their firmware into the image.
pub(super) fn add_modules(
    c: &mut Closure<'_>,
    sys: &Sysroot,
    kernel: &Kernel,
    set: &ModuleSet,
    recipes: &[Recipe],
) -> Result<(), Error> {
    let dir = format!("/lib/modules/{}", kernel.release);
    for m in &set.modules {
        let source = if m.decompressed() {
            Source::Decompressed {
                path: m.host_path.clone(),
            }
        } else {
            Source::Host {
                path: m.host_path.clone(),
            }
        };
        c.add_bytes(
            &format!("{dir}/{}", m.image_rel_path),
            Arc::from(m.bytes.as_slice()),
            0o644,
            source,
            &m.reason.to_string(),
            Role::Module,
        )?;
    }
    for (name, bytes) in &set.index_files {
        c.add_generated(&format!("{dir}/{name}"), bytes.clone(), 0o644, "depmod")?;
    }
    // Firmware the modules name is taken when present; a recipe's firmware must be there.
    let mut names = set.firmware();
    let mut required = Vec::new();
    for r in recipes {
        for f in &r.file.firmware {
            names.push(f.name().to_string());
            if !f.optional() {
                required.push((f.name().to_string(), r.origin.clone()));
            }
        }
    }
    names.sort();
    names.dedup();
    let found = resolve::firmware::resolve(sys, &kernel.release, &names).map_err(|e| match e {
        resolve::firmware::Error::Sysroot(s) => Error::Sysroot(s),
    })?;
    if let Some((name, recipe)) = required.iter().find(|(n, _)| found.missing.contains(n)) {
        return Err(Error::Closure(closure::Error::Missing {
            what: "firmware",
            name: name.clone(),
            recipe: recipe.clone(),
            looked: "/lib/firmware".into(),
        }));
    }
    if !found.missing.is_empty() {
        log::debug!(
            "firmware named by modules but not installed: {}",
            found.missing.join(", ")
        );
    }
    for f in &found.files {
        c.add_host_path(
            &f.host_path,
            &format!("firmware {}", f.name),
            Role::Firmware,
        )?;
    }
    Ok(())
}

/// Programs, files and libraries of all recipes, closed over their ELF dependencies, plus
/// `/init`.
pub(super) fn resolve_files<'a>(
    sys: &'a Sysroot,
    recipes: &[Recipe],
    init: &Path,
) -> Result<Closure<'a>, Error> {
    let mut c = Closure::new(sys)?;
    for r in recipes {
        let why = format!("recipe {}", r.name);
        for item in &r.file.programs {
            if !c.add_program(item.name(), &why)? {
                missing(item, "program", r, &rear_sys::sysroot::PATH.join(":"))?;
            }
        }
        for group in &r.file.any_of {
            let mut found = false;
            for name in group.names() {
                if c.add_program(name, &why)? {
                    found = true;
                    break;
                }
            }
            if !found && !group.names().is_empty() && group.optional() {
                c.warn(format!(
                    "none of the programs {} (recipe {}) is installed",
                    group.names().join(", "),
                    r.origin
                ));
            } else if !found && !group.names().is_empty() {
                return Err(Error::Closure(closure::Error::Missing {
                    what: "any of the programs",
                    name: group.names().join(", "),
                    recipe: r.origin.clone(),
                    looked: rear_sys::sysroot::PATH.join(":"),
                }));
            }
        }
        for item in &r.file.files {
            if c.add_files(item.name(), &why)? == 0 {
                missing(item, "file", r, "")?;
            }
        }
        for item in &r.file.libraries {
            if !c.add_library(item.name(), &why)? {
                missing(item, "library", r, "the library search path")?;
            }
        }
    }
    let bytes = std::fs::read(init).map_err(|error| Error::Output {
        path: init.to_path_buf(),
        error,
    })?;
    let dynamic = crate::resolve::elf::parse(init, &bytes)
        .ok()
        .flatten()
        .is_some_and(|i| i.interp.is_some());
    c.add_bytes(
        "/init",
        Arc::from(bytes),
        0o755,
        Source::Build {
            program: "rear-restore".to_string(),
        },
        "rescue system init",
        Role::Requested,
    )?;
    if dynamic {
        // The path stays out of the manifest text: it would make the image depend on where
        // the tool is installed.
        log::debug!("/init is {}", init.display());
        c.warn(
            "/init (rear-restore) is dynamically linked; its libraries come from the sysroot \
             (build it with `make static` for a static /init)"
                .to_string(),
        );
        c.scan_later(Path::new("/init"), "rescue system init");
    }
    c.resolve_dependencies()?;
    Ok(c)
}

/// A recipe item that is not on the host: fine when optional, an error otherwise.
fn missing(item: &recipe::Item, what: &'static str, r: &Recipe, looked: &str) -> Result<(), Error> {
    if item.optional() {
        log::debug!(
            "optional {what} {} (recipe {}) not found",
            item.name(),
            r.name
        );
        return Ok(());
    }
    Err(Error::Closure(closure::Error::Missing {
        what,
        name: item.name().to_string(),
        recipe: r.origin.clone(),
        looked: looked.to_string(),
    }))
}
