//! modem (to be built).
