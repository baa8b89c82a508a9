//! Resolver: kmod (being written).
