//! centre (to be built).
