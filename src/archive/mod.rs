//! Archive stage: [`crate::manifest::Image`] -> compressed newc cpio, and reading one back.
