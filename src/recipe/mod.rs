//! Recipes (being written).
