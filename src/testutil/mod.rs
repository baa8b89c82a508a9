//! Test helpers: tiny ELF files, `.ko` files and fake sysroots built in code.
pub mod elf;
pub mod kmod;
pub mod layout;
pub mod media;
pub mod tools;
