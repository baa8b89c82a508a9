//! Resolver: firmware (being written).
