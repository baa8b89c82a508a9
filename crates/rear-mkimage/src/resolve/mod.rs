//! Resolve stage: what a program, a module or a firmware name pulls into the image.

pub mod elf;
pub mod firmware;
pub mod kmod;
