//! voice (to be built).
