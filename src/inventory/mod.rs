//! Inventory (being written).
