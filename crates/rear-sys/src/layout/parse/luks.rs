//! `cryptsetup luksDump DEVICE`: LUKS header parameters (never key material).
//!
//! LUKS2 (cryptsetup 2.x): a header block of `Key:\tvalue` lines (`Version`, `UUID`,
//! `Label`), then indented sections `Data segments:` (`cipher:`, `sector: 512 [bytes]`),
//! `Keyslots:` (`Key: 512 bits`, `PBKDF: argon2id`, `AF hash: sha256`) and `Digests:`
//! (`Hash: sha256`). The first keyslot stands for all: they are created with the same
//! parameters unless someone changed one by hand.
//!
//! LUKS1: `Cipher name: aes`, `Cipher mode: xts-plain64`, `Hash spec: sha256`,
//! `MK bits: 512`, `UUID:`; the KDF is always PBKDF2.

use super::{Error, colon_value};

/// Header parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LuksInfo {
    /// 1 or 2.
    pub version: u8,
    /// `aes-xts-plain64`.
    pub cipher: String,
    /// Key size in bits.
    pub key_size: u32,
    /// Hash.
    pub hash: String,
    /// `argon2id`, `argon2i`, `pbkdf2`.
    pub pbkdf: String,
    /// Encryption sector size (LUKS2).
    pub sector_size: Option<u32>,
    /// Header UUID.
    pub uuid: String,
    /// Label (LUKS2), empty when none.
    pub label: String,
}

const TOOL: &str = "cryptsetup luksDump";

fn need<'a>(v: Option<&'a str>, f: &str) -> Result<&'a str, Error> {
    v.ok_or_else(|| Error::Missing {
        tool: TOOL.into(),
        field: f.into(),
    })
}

/// The first number in `v` (`512 bits` → 512).
fn leading_number(f: &str, v: &str) -> Result<u32, Error> {
    super::number(TOOL, f, v.split_whitespace().next().unwrap_or(""))
}

/// The value of `key` in the indented lines below the line `section`.
fn in_section<'a>(text: &'a str, section: &str, key: &str) -> Option<&'a str> {
    text.lines()
        .skip_while(|l| l.trim_end() != section)
        .skip(1)
        .take_while(|l| l.starts_with([' ', '\t']))
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
}

/// Parses luksDump output of LUKS1 or LUKS2.
pub fn parse(text: &str) -> Result<LuksInfo, Error> {
    let version: u8 = super::number(
        TOOL,
        "Version",
        need(colon_value(text, "Version"), "Version")?,
    )?;
    let uuid = need(colon_value(text, "UUID"), "UUID")?.to_string();
    if version == 1 {
        let name = need(colon_value(text, "Cipher name"), "Cipher name")?;
        let mode = need(colon_value(text, "Cipher mode"), "Cipher mode")?;
        return Ok(LuksInfo {
            version,
            cipher: format!("{name}-{mode}"),
            key_size: leading_number("MK bits", need(colon_value(text, "MK bits"), "MK bits")?)?,
            hash: need(colon_value(text, "Hash spec"), "Hash spec")?.to_string(),
            pbkdf: "pbkdf2".into(),
            sector_size: None,
            uuid,
            label: String::new(),
        });
    }
    let label = match colon_value(text, "Label") {
        Some("(no label)") | None => String::new(),
        Some(l) => l.to_string(),
    };
    let cipher = need(
        in_section(text, "Data segments:", "cipher"),
        "Data segments cipher",
    )?;
    let sector = in_section(text, "Data segments:", "sector")
        .map(|v| leading_number("sector", v))
        .transpose()?;
    let key = need(in_section(text, "Keyslots:", "Key"), "Keyslots Key")?;
    let pbkdf = need(in_section(text, "Keyslots:", "PBKDF"), "Keyslots PBKDF")?;
    let hash =
        in_section(text, "Digests:", "Hash").or_else(|| in_section(text, "Keyslots:", "AF hash"));
    Ok(LuksInfo {
        version,
        cipher: cipher.to_string(),
        key_size: leading_number("Key", key)?,
        hash: need(hash, "Digests Hash")?.to_string(),
        pbkdf: pbkdf.to_string(),
        sector_size: sector,
        uuid,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_luks2_fixture() {
        let i = parse(include_str!(
            "../../../../../tests/fixtures/layout/luks2-lvm-ext4/luksDump.vda3.txt"
        ))
        .unwrap();
        assert_eq!(
            i,
            LuksInfo {
                version: 2,
                cipher: "aes-xts-plain64".into(),
                key_size: 512,
                hash: "sha256".into(),
                pbkdf: "argon2id".into(),
                sector_size: Some(512),
                uuid: "7c0ffee0-1234-4abc-8def-0123456789ab".into(),
                label: "cryptroot".into(),
            }
        );
    }

    #[test]
    fn parse_luks1() {
        let t = "LUKS header information for /dev/sda3\n\nVersion:       \t1\n\
            Cipher name:   \taes\nCipher mode:   \txts-plain64\nHash spec:     \tsha256\n\
            Payload offset:\t4096\nMK bits:       \t512\n\
            UUID:          \t0b3e6c9a-1111-2222-3333-444455556666\n\nKey Slot 0: ENABLED\n";
        let i = parse(t).unwrap();
        assert_eq!(i.version, 1);
        assert_eq!(i.cipher, "aes-xts-plain64");
        assert_eq!((i.key_size, i.pbkdf.as_str()), (512, "pbkdf2"));
        assert_eq!(i.label, "");
    }

    #[test]
    fn parse_luks2_no_label_and_missing_keyslot() {
        let t =
            include_str!("../../../../../tests/fixtures/layout/luks2-lvm-ext4/luksDump.vda3.txt")
                .replace("cryptroot", "(no label)");
        assert_eq!(parse(&t).unwrap().label, "");
        let cut = t.split("Keyslots:").next().unwrap_or("");
        assert_eq!(
            parse(cut).unwrap_err().to_string(),
            "cryptsetup luksDump: no Keyslots Key in the output"
        );
    }
}
