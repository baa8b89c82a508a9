//! Closure (being written).
