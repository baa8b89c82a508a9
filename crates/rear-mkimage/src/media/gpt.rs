//! GUID partition tables (UEFI 2.10, section 5.3) for disk images: layout in, sectors out.
//!
//! Input: a [`Gpt`] (disk GUID, disk size, partitions). Output: the protective MBR (LBA 0,
//! with caller-supplied boot code), the primary header and entry array (LBA 1 to 33) and the
//! backup entry array and header (the last 33 sectors). [`Gpt::parse`] reads a primary table
//! back, so a written image can be moved to a larger disk with the backup at the disk's real
//! end. Only 512-byte logical sectors and the usual 128 entries of 128 bytes are written.
//! GUIDs derived from content ([`Guid::derived`]) keep images reproducible.

use std::fmt;

use sha2::{Digest, Sha256};

/// Logical sector size of the images written.
pub const SECTOR: u64 = 512;
/// Number of partition entries in the array (the minimum the UEFI spec allows for 16 KiB).
pub const ENTRIES: u32 = 128;
/// Size of one partition entry.
pub const ENTRY_SIZE: u32 = 128;
/// Sectors of the entry array.
pub const ENTRY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;
/// First LBA a partition may use (after the MBR, the header and the entry array).
pub const FIRST_USABLE: u64 = 2 + ENTRY_SECTORS;
/// Partition attribute bit 2: "legacy BIOS bootable" (what syslinux's `gptmbr.bin` boots).
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;

/// Errors of building or reading a table; each names the partition or field concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A partition lies outside the usable sectors or ends before it starts.
    #[error(
        "GPT partition {number} ({name}): sectors {first}..={last} outside the usable {min}..={max}"
    )]
    OutOfRange {
        /// Partition number (1-based).
        number: usize,
        /// Partition name.
        name: String,
        /// First sector.
        first: u64,
        /// Last sector.
        last: u64,
        /// First usable sector.
        min: u64,
        /// Last usable sector.
        max: u64,
    },
    /// Two partitions share sectors.
    #[error("GPT partitions {a} and {b} overlap")]
    Overlap {
        /// Partition number (1-based).
        a: usize,
        /// Partition number (1-based).
        b: usize,
    },
    /// More partitions than the entry array holds.
    #[error("GPT: {count} partitions, at most {ENTRIES} fit")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A partition name longer than the 36 UTF-16 units of an entry.
    #[error("GPT partition name {name:?} is longer than 36 UTF-16 units")]
    NameTooLong {
        /// The name.
        name: String,
    },
    /// A disk too small for the two tables.
    #[error("disk of {sectors} sectors is too small for a GPT")]
    DiskTooSmall {
        /// Size in sectors.
        sectors: u64,
    },
    /// The bytes read are not a primary GPT this module can handle.
    #[error("no valid primary GPT: {what}")]
    Invalid {
        /// What is wrong (signature, CRC, sizes).
        what: String,
    },
    /// A GUID string is not `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    #[error("{0:?} is not a GUID")]
    BadGuid(String),
}

/// A GUID as stored on disk (the first three fields little-endian, UEFI "mixed endian").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The EFI system partition type, `C12A7328-F81F-11D2-BA4B-00A0C93EC93B`.
    pub const ESP: Guid = Guid([
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ]);
    /// The Linux filesystem data type, `0FC63DAF-8483-4772-8E79-3D69D8477DE4`.
    pub const LINUX_FS: Guid = Guid([
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ]);

    /// Parses the text form (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`, any case).
    pub fn parse(text: &str) -> Result<Guid, Error> {
        let bad = || Error::BadGuid(text.to_string());
        let parts: Vec<&str> = text.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if parts.len() != 5 || parts.iter().zip(lens).any(|(p, n)| p.len() != n) {
            return Err(bad());
        }
        let hex: String = parts.concat();
        let mut big = [0u8; 16];
        hex::decode_to_slice(&hex, &mut big).map_err(|_| bad())?;
        Ok(Guid::from_big_endian(big))
    }

    /// A version-4-shaped GUID from the SHA-256 of `seed`: the same seed, the same GUID.
    pub fn derived(seed: &[u8]) -> Guid {
        let digest = Sha256::digest(seed);
        let mut big = [0u8; 16];
        big.copy_from_slice(&digest[..16]);
        big[6] = (big[6] & 0x0f) | 0x40;
        big[8] = (big[8] & 0x3f) | 0x80;
        Guid::from_big_endian(big)
    }

    /// From the byte order of the text form (RFC 4122).
    fn from_big_endian(b: [u8; 16]) -> Guid {
        let mut d = b;
        d[0..4].reverse();
        d[4..6].reverse();
        d[6..8].reverse();
        Guid(d)
    }

    /// In the byte order of the text form (RFC 4122): what Linux shows as a UUID.
    pub fn to_big_endian(self) -> [u8; 16] {
        // The mixed-endian swap is its own inverse.
        Guid::from_big_endian(self.0).0
    }
}

impl fmt::Display for Guid {
    /// Upper-case text form, as gdisk prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_big_endian();
        let h = hex::encode_upper(b);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID (the PARTUUID).
    pub guid: Guid,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Attribute bits ([`ATTR_LEGACY_BIOS_BOOTABLE`], ...).
    pub attributes: u64,
    /// Name (PARTLABEL), at most 36 UTF-16 units.
    pub name: String,
}

impl Partition {
    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        self.last_lba + 1 - self.first_lba
    }
}

/// A whole partition table for a disk of `sectors` 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    /// The disk GUID.
    pub disk_guid: Guid,
    /// Disk size in sectors; the backup header is in the last one.
    pub sectors: u64,
    /// Partitions, numbered from 1 in this order.
    pub partitions: Vec<Partition>,
}

/// Sectors at the end of the disk taken by the backup entry array and header.
pub const BACKUP_SECTORS: u64 = ENTRY_SECTORS + 1;

impl Gpt {
    /// The last sector a partition may use.
    pub fn last_usable(&self) -> u64 {
        self.sectors.saturating_sub(BACKUP_SECTORS + 1)
    }

    /// Checks sizes, ranges, overlaps and names.
    pub fn validate(&self) -> Result<(), Error> {
        if self.sectors < FIRST_USABLE + BACKUP_SECTORS + 1 {
            return Err(Error::DiskTooSmall {
                sectors: self.sectors,
            });
        }
        if self.partitions.len() > ENTRIES as usize {
            return Err(Error::TooMany {
                count: self.partitions.len(),
            });
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if p.first_lba < FIRST_USABLE
                || p.last_lba > self.last_usable()
                || p.last_lba < p.first_lba
            {
                return Err(Error::OutOfRange {
                    number: i + 1,
                    name: p.name.clone(),
                    first: p.first_lba,
                    last: p.last_lba,
                    min: FIRST_USABLE,
                    max: self.last_usable(),
                });
            }
            if p.name.encode_utf16().count() > 36 {
                return Err(Error::NameTooLong {
                    name: p.name.clone(),
                });
            }
            for (j, q) in self.partitions.iter().enumerate().skip(i + 1) {
                if p.first_lba <= q.last_lba && q.first_lba <= p.last_lba {
                    return Err(Error::Overlap { a: i + 1, b: j + 1 });
                }
            }
        }
        Ok(())
    }

    /// LBA 0: a protective MBR (one partition of type 0xEE over the disk) with `boot_code`
    /// in its first 440 bytes and a disk signature taken from the disk GUID.
    pub fn protective_mbr(&self, boot_code: &[u8; 440]) -> [u8; 512] {
        let mut mbr = [0u8; 512];
        mbr[..440].copy_from_slice(boot_code);
        mbr[440..444].copy_from_slice(&self.disk_guid.0[..4]);
        let e = &mut mbr[446..462];
        // Status 0: the UEFI spec wants the protective entry not active.
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
        e[4] = 0xee;
        e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        let size = u32::try_from(self.sectors - 1).unwrap_or(u32::MAX);
        e[12..16].copy_from_slice(&size.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        mbr
    }

    /// The entry array (32 sectors).
    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (p, e) in self
            .partitions
            .iter()
            .zip(out.chunks_exact_mut(ENTRY_SIZE as usize))
        {
            e[0..16].copy_from_slice(&p.type_guid.0);
            e[16..32].copy_from_slice(&p.guid.0);
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
            for (unit, slot) in p.name.encode_utf16().zip(e[56..128].chunks_exact_mut(2)) {
                slot.copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    /// A header sector at `my_lba` pointing to `alternate_lba` and the entries at `entries_lba`.
    fn header(
        &self,
        my_lba: u64,
        alternate_lba: u64,
        entries_lba: u64,
        entries_crc: u32,
    ) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&REVISION.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.0);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// LBA 1 to 33: the primary header and the entry array.
    pub fn primary(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let entries = self.entries();
        let mut out = self.header(1, self.sectors - 1, 2, crc32(&entries));
        out.extend_from_slice(&entries);
        Ok(out)
    }

    /// The last 33 sectors: the backup entry array, then the backup header in the last sector.
    pub fn backup(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let entries = self.entries();
        let last = self.sectors - 1;
        let header = self.header(last, 1, last - ENTRY_SECTORS, crc32(&entries));
        let mut out = entries;
        out.extend_from_slice(&header);
        Ok(out)
    }

    /// Reads the primary table from the first 34 sectors of a disk (`bytes` may be longer).
    /// `sectors` comes from the header's backup LBA.
    pub fn parse(bytes: &[u8]) -> Result<Gpt, Error> {
        let invalid = |what: &str| Error::Invalid {
            what: what.to_string(),
        };
        if bytes.len() < (FIRST_USABLE * SECTOR) as usize {
            return Err(invalid("fewer than 34 sectors"));
        }
        let h = &bytes[SECTOR as usize..2 * SECTOR as usize];
        if &h[0..8] != SIGNATURE {
            return Err(invalid("no \"EFI PART\" signature at LBA 1"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(b)
        };
        if u32_at(12) != HEADER_SIZE {
            return Err(invalid("header size is not 92"));
        }
        let mut copy = h[..HEADER_SIZE as usize].to_vec();
        copy[16..20].fill(0);
        if crc32(&copy) != u32_at(16) {
            return Err(invalid("header CRC mismatch"));
        }
        if u64_at(72) != 2 || u32_at(80) != ENTRIES || u32_at(84) != ENTRY_SIZE {
            return Err(invalid(
                "entry array is not 128 entries of 128 bytes at LBA 2",
            ));
        }
        let entries = &bytes[2 * SECTOR as usize..(FIRST_USABLE * SECTOR) as usize];
        if crc32(entries) != u32_at(88) {
            return Err(invalid("entry array CRC mismatch"));
        }
        let mut disk_guid = Guid::default();
        disk_guid.0.copy_from_slice(&h[56..72]);
        let mut partitions = Vec::new();
        for e in entries.chunks_exact(ENTRY_SIZE as usize) {
            let mut type_guid = Guid::default();
            type_guid.0.copy_from_slice(&e[0..16]);
            if type_guid == Guid::default() {
                continue;
            }
            let mut guid = Guid::default();
            guid.0.copy_from_slice(&e[16..32]);
            let le = |o: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&e[o..o + 8]);
                u64::from_le_bytes(b)
            };
            let units: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            partitions.push(Partition {
                type_guid,
                guid,
                first_lba: le(32),
                last_lba: le(40),
                attributes: le(48),
                name: String::from_utf16_lossy(&units),
            });
        }
        let gpt = Gpt {
            disk_guid,
            sectors: u64_at(32) + 1,
            partitions,
        };
        gpt.validate()?;
        Ok(gpt)
    }
}

/// CRC-32 (IEEE 802.3, reflected, as the UEFI spec uses for GPT headers and entry arrays).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Gpt {
        Gpt {
            disk_guid: Guid::derived(b"disk"),
            sectors: 8192,
            partitions: vec![
                Partition {
                    type_guid: Guid::ESP,
                    guid: Guid::derived(b"p1"),
                    first_lba: 2048,
                    last_lba: 4095,
                    attributes: ATTR_LEGACY_BIOS_BOOTABLE,
                    name: "REAR-BOOT".into(),
                },
                Partition {
                    type_guid: Guid::LINUX_FS,
                    guid: Guid::derived(b"p2"),
                    first_lba: 4096,
                    last_lba: 6143,
                    attributes: 0,
                    name: "REAR-DATA".into(),
                },
            ],
        }
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guid_parse_round_trips_and_orders_bytes() {
        let g = Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
        assert_eq!(g, Guid::ESP);
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            Guid::LINUX_FS.to_string(),
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
        assert!(matches!(Guid::parse("c12a7328"), Err(Error::BadGuid(_))));
        assert!(Guid::parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b").is_err());
    }

    #[test]
    fn derived_is_stable_and_version_4() {
        let a = Guid::derived(b"x");
        assert_eq!(a, Guid::derived(b"x"));
        assert_ne!(a, Guid::derived(b"y"));
        let text = a.to_string();
        assert_eq!(&text[14..15], "4", "{text}");
        assert!("89AB".contains(&text[19..20]), "{text}");
    }

    #[test]
    fn parse_reads_back_primary() {
        let gpt = sample();
        let mut disk = vec![0u8; 512];
        disk.extend(gpt.primary().unwrap());
        assert_eq!(disk.len(), 34 * 512);
        assert_eq!(Gpt::parse(&disk).unwrap(), gpt);
        disk[600] ^= 1;
        assert!(matches!(Gpt::parse(&disk), Err(Error::Invalid { .. })));
    }

    #[test]
    fn backup_mirrors_primary() {
        let gpt = sample();
        let primary = gpt.primary().unwrap();
        let backup = gpt.backup().unwrap();
        assert_eq!(backup.len(), 33 * 512);
        assert_eq!(&backup[..16384], &primary[512..]);
        let h = &backup[16384..];
        assert_eq!(&h[0..8], b"EFI PART");
        assert_eq!(u64::from_le_bytes(h[24..32].try_into().unwrap()), 8191);
        assert_eq!(u64::from_le_bytes(h[72..80].try_into().unwrap()), 8191 - 32);
    }

    #[test]
    fn validate_rejects_overlap_range_and_names() {
        let mut gpt = sample();
        gpt.partitions[1].first_lba = 4000;
        assert_eq!(gpt.validate(), Err(Error::Overlap { a: 1, b: 2 }));
        let mut gpt = sample();
        gpt.partitions[1].last_lba = 8190;
        assert!(matches!(
            gpt.validate(),
            Err(Error::OutOfRange { number: 2, .. })
        ));
        let mut gpt = sample();
        gpt.partitions[0].name = "x".repeat(37);
        assert!(matches!(gpt.validate(), Err(Error::NameTooLong { .. })));
        let gpt = Gpt {
            sectors: 40,
            ..sample()
        };
        assert!(matches!(gpt.validate(), Err(Error::DiskTooSmall { .. })));
    }

    #[test]
    fn protective_mbr_covers_the_disk() {
        let gpt = sample();
        let mbr = gpt.protective_mbr(&[0x90; 440]);
        assert_eq!(mbr[450], 0xee);
        assert_eq!(&mbr[454..458], &1u32.to_le_bytes());
        assert_eq!(&mbr[458..462], &8191u32.to_le_bytes());
        assert_eq!(&mbr[510..], &[0x55, 0xaa]);
        assert_eq!(mbr[0], 0x90);
    }
}
