//! Build orchestration (being written).
