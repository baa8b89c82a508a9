//! Sizes: what a saved disk needs, and its partition table placed on a target disk of
//! another size or sector size (`--resize`).

use super::*;

/// Bytes a disk must have for the saved table: the end of the last partition plus the GPT
/// backup header and entries; the whole saved size for a disk without a table.
pub(super) fn needed_bytes(old: &Disk) -> u64 {
    let Some(table) = &old.table else {
        return old.size;
    };
    let end = table
        .partitions
        .iter()
        .map(|p| p.start_bytes + p.size_bytes)
        .max()
        .unwrap_or(0);
    match table.kind {
        TableKind::Gpt => end + gpt_tail_bytes(old.logical_sector_size),
        TableKind::Dos => end,
    }
}

/// The backup GPT header and its 128 entries of 128 bytes at the end of the disk.
pub(super) fn gpt_tail_bytes(sector: u32) -> u64 {
    let sector = u64::from(sector.max(512));
    16384_u64.div_ceil(sector) * sector + sector
}

/// The saved table placed on `new`: partitions renamed, sizes converted to its sector size,
/// the last one grown when asked.
pub(super) fn place_table(
    old: &Disk,
    table: &PartitionTable,
    new: &Disk,
    resize: Resize,
) -> Result<PartitionTable, Error> {
    let sector = u64::from(new.logical_sector_size.max(512));
    let to_sectors = |p: &Partition, bytes: u64| {
        if bytes.is_multiple_of(sector) {
            Ok(bytes / sector)
        } else {
            Err(Error::SectorSize {
                partition: p.device.clone(),
                bytes,
                new: new.device.clone(),
                sector: new.logical_sector_size,
            })
        }
    };
    let mut partitions = Vec::with_capacity(table.partitions.len());
    for p in &table.partitions {
        let mut q = p.clone();
        q.device = partition_path(&new.device, p.number);
        q.start = to_sectors(p, p.start_bytes)?;
        q.size = to_sectors(p, p.size_bytes)?;
        partitions.push(q);
    }
    let grow = resize == Resize::Last && new.size > old.size;
    if grow {
        // The partition that ends last; on MBR only a primary one (a logical partition would
        // need its extended container grown too).
        let last = partitions
            .iter_mut()
            .filter(|p| table.kind == TableKind::Gpt || p.number <= 4)
            .filter(|p| !p.flags.contains(&PartFlag::Extended))
            .max_by_key(|p| p.start + p.size);
        let total = new.size / sector;
        let last_usable = match table.kind {
            TableKind::Gpt => total - gpt_tail_bytes(new.logical_sector_size) / sector - 1,
            TableKind::Dos => total - 1,
        };
        if let Some(p) = last {
            let ends_last = table
                .partitions
                .iter()
                .all(|o| o.start_bytes + o.size_bytes <= (p.start + p.size) * sector);
            if ends_last && last_usable + 1 > p.start + p.size {
                p.size = last_usable + 1 - p.start;
            }
        }
    }
    for p in &mut partitions {
        p.start_bytes = p.start * sector;
        p.size_bytes = p.size * sector;
    }
    Ok(PartitionTable {
        kind: table.kind,
        id: table.id.clone(),
        first_lba: table
            .first_lba
            .map(|l| l * u64::from(old.logical_sector_size.max(512)) / sector),
        // sfdisk computes the last usable sector from the target's size.
        last_lba: None,
        partitions,
    })
}
