//! Resolver: elf (being written).
