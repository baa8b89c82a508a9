//! Disk identity from `/sys/block/<disk>`, which lsblk lacks when udev does not run (as in
//! a rescue system) and which capture reads through the sysroot.
//!
//! Text form, one `key=value` a line (as `tests/fixtures/layout/create.sh` writes it and
//! [`render`] produces it from sysfs reads): `serial` (`serial` or `device/serial`), `model`
//! (`device/model`), `wwid` (`wwid` or `device/wwid`), `removable` (`removable`, 0 or 1).

/// Identity of one disk from sysfs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysBlock {
    /// Serial number.
    pub serial: String,
    /// Model.
    pub model: String,
    /// WWID (`eui.…`, `naa.…`, `t10.…`).
    pub wwid: String,
    /// The removable flag.
    pub removable: bool,
}

/// Parses the `key=value` text; unknown keys are ignored, values are trimmed.
pub fn parse(text: &str) -> SysBlock {
    let mut s = SysBlock::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "serial" => s.serial = v,
            "model" => s.model = v,
            "wwid" => s.wwid = v,
            "removable" => s.removable = v == "1",
            _ => {}
        }
    }
    s
}

/// The text form of `s`, for [`parse`].
pub fn render(s: &SysBlock) -> String {
    format!(
        "serial={}\nmodel={}\nwwid={}\nremovable={}\n",
        s.serial,
        s.model,
        s.wwid,
        u8::from(s.removable)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_nvme_fixture() {
        let s = parse(include_str!(
            "../../../../../tests/fixtures/layout/nvme/sysblock.nvme0n1.txt"
        ));
        assert_eq!(s.serial, "NVME0001");
        assert_eq!(s.model, "QEMU NVMe Ctrl");
        assert!(!s.removable);
        assert_eq!(parse(&render(&s)), s);
    }
}
