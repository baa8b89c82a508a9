//! Kernel module metadata: depmod's files (modules.dep, .alias, .softdep, .builtin) parsed and
//! written, shared by the build (which modules go in) and the rescue system (which to load).
