//! radio (to be built).
