//! runtime (to be built).
