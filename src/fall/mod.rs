//! fall (to be built).
