//! The `REAR-*` labels of the media: what the build writes and what the rescue system and
//! the backup code look for, in one place.

/// The ISO 9660 volume label (also what GRUB searches for when the marker file is not found).
pub const ISO_VOLUME: &str = "REAR-ISO";
/// The FAT label of the ISO's ESP image.
pub const ISO_ESP: &str = "REAR-EFI";
/// Label of the USB image's ESP (FAT volume label and GPT partition name).
pub const USB_ESP: &str = "REAR-BOOT";
/// Label of the USB image's data partition (ext4 label and GPT partition name).
pub const USB_DATA: &str = "REAR-DATA";
