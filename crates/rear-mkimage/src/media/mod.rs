//! Media stage: kernel + initrd + boot loaders -> bootable artefacts (ISO, USB image, PXE tree).
//!
//! Input: a [`MediaInput`] (the built kernel and initrd, the host name, the kernel command
//! line). Output: files in the output directory, written atomically by the caller. The boot
//! menus of every medium show the same [`MenuEntry`] list, rendered from the templates in
//! `bootloaders/` (embedded with `include_str!`).

pub mod bootfiles;
pub mod esp;
pub mod gpt;
pub mod grub;
pub mod inspect;
pub mod iso;
pub mod pxe;
pub mod qemu;
pub mod usb;
pub mod verify;

/// Everything a medium is made from.
#[derive(Debug, Clone)]
pub struct MediaInput<'a> {
    /// Host name of the protected system (menu titles, file names).
    pub hostname: &'a str,
    /// Kernel release.
    pub release: &'a str,
    /// The kernel image (bzImage).
    pub kernel: &'a [u8],
    /// The compressed initramfs.
    pub initrd: &'a [u8],
    /// Kernel command line of the default entry (consoles, `rear.*` options, extra options).
    pub cmdline: String,
    /// Seconds the boot menu waits before it boots the default entry.
    pub boot_timeout: u32,
    /// `SOURCE_DATE_EPOCH`: timestamps on the medium, and the seed of its ids with the content.
    pub epoch: u64,
}

/// What a boot menu entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryAction {
    /// Boot the rescue kernel with this command line.
    Linux {
        /// The kernel command line.
        cmdline: String,
    },
    /// Boot the first hard disk instead.
    LocalDisk,
}

/// One entry of the boot menu; the same list on every medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// Short id (`recover`, `auto`, `local`), usable as a label.
    pub id: &'static str,
    /// The title shown.
    pub title: String,
    /// What it boots.
    pub action: EntryAction,
}

/// The menu every medium shows: "Recover <host>" (default), "Automatic recover <host>"
/// (adds `rear.auto`), "Boot from the first hard disk".
pub fn menu_entries(input: &MediaInput<'_>) -> Vec<MenuEntry> {
    vec![
        MenuEntry {
            id: "recover",
            title: format!("Recover {}", input.hostname),
            action: EntryAction::Linux {
                cmdline: input.cmdline.clone(),
            },
        },
        MenuEntry {
            id: "auto",
            title: format!("Automatic recover {}", input.hostname),
            action: EntryAction::Linux {
                cmdline: format!("{} rear.auto", input.cmdline).trim().to_string(),
            },
        },
        MenuEntry {
            id: "local",
            title: "Boot from the first hard disk".to_string(),
            action: EntryAction::LocalDisk,
        },
    ]
}

/// Fills `@NAME@` placeholders of a boot-loader template. Every placeholder in the template
/// must have a value and every value must be used, so a template and its caller cannot drift
/// apart silently.
pub fn render(
    template_name: &str,
    template: &str,
    vars: &[(&str, &str)],
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut used = vec![false; vars.len()];
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('@') {
            Some(end) if is_placeholder(&after[..end]) => {
                let name = &after[..end];
                let Some(i) = vars.iter().position(|(k, _)| *k == name) else {
                    return Err(TemplateError::Unknown {
                        template: template_name.to_string(),
                        name: name.to_string(),
                    });
                };
                used[i] = true;
                out.push_str(vars[i].1);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(TemplateError::Unused {
            template: template_name.to_string(),
            name: vars[i].0.to_string(),
        });
    }
    Ok(out)
}

/// Renders a boot-menu template with the values every menu has: `@HOST@`, the timeout
/// (`timeout` = the placeholder's name and its value, as each boot loader counts differently),
/// and for each of [`menu_entries`] `@<ID>_TITLE@` (passed through `title`, for quoting)
/// and, for kernel entries, `@<ID>_CMDLINE@`.
pub fn render_menu(
    template_name: &str,
    template: &str,
    input: &MediaInput<'_>,
    timeout: (&str, String),
    title: impl Fn(&str) -> String,
) -> Result<String, TemplateError> {
    let mut owned: Vec<(String, String)> = vec![
        ("HOST".into(), input.hostname.to_string()),
        (timeout.0.to_string(), timeout.1),
    ];
    for entry in menu_entries(input) {
        let id = entry.id.to_ascii_uppercase();
        owned.push((format!("{id}_TITLE"), title(&entry.title)));
        if let EntryAction::Linux { cmdline } = &entry.action {
            owned.push((format!("{id}_CMDLINE"), cmdline.clone()));
        }
    }
    let vars: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    render(template_name, template, &vars)
}

/// The timeout of the SYSLINUX family (ISOLINUX, SYSLINUX, PXELINUX): tenths of a second,
/// at least 1, because 0 waits forever.
pub fn syslinux_timeout(input: &MediaInput<'_>) -> (&'static str, String) {
    (
        "TIMEOUT_DS",
        (u64::from(input.boot_timeout) * 10).max(1).to_string(),
    )
}

fn is_placeholder(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A template and its values do not match (a bug in this program, named precisely).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template has a placeholder nobody fills.
    #[error("template {template}: no value for @{name}@")]
    Unknown {
        /// Template file name.
        template: String,
        /// Placeholder.
        name: String,
    },
    /// A value was given that the template does not use.
    #[error("template {template}: @{name}@ is not used")]
    Unused {
        /// Template file name.
        template: String,
        /// Placeholder.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_and_checks_placeholders() {
        let t = "label @ID@\n  append @APPEND@ user@host\n";
        assert_eq!(
            render("t", t, &[("ID", "x"), ("APPEND", "a b")]).unwrap(),
            "label x\n  append a b user@host\n"
        );
        assert_eq!(
            render("t", t, &[("ID", "x")]),
            Err(TemplateError::Unknown {
                template: "t".into(),
                name: "APPEND".into()
            })
        );
        assert_eq!(
            render("t", "plain", &[("ID", "x")]),
            Err(TemplateError::Unused {
                template: "t".into(),
                name: "ID".into()
            })
        );
    }

    #[test]
    fn menu_entries_default_auto_local() {
        let input = MediaInput {
            hostname: "db1",
            release: "6.1",
            kernel: b"",
            initrd: b"",
            cmdline: "console=ttyS0".into(),
            boot_timeout: 5,
            epoch: 0,
        };
        let e = menu_entries(&input);
        assert_eq!(e[0].title, "Recover db1");
        assert_eq!(
            e[1].action,
            EntryAction::Linux {
                cmdline: "console=ttyS0 rear.auto".into()
            }
        );
        assert_eq!(e[2].action, EntryAction::LocalDisk);
    }
}
