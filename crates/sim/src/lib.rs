//! The simulators the unit is tested and demonstrated against, each speaking the real protocol:
//! a SIMCom- or Quectel-style cellular module on a pseudo-terminal (3GPP TS 27.005/27.007) and
//! the network behind it, the pendant on the simulated air, the receiving centre (SCAIP and
//! SIA DC-09 receivers), a whole simulated site, and `vigil demo`.
//!
//! None of this is in the appliance: the `vigil` binary has it only with its `sim` feature,
//! which the Debian package leaves out. The modules mirror the unit's own (`modem`, `radio`,
//! `centre`, `runtime`), each adding its simulators to what the unit has there, so a simulator
//! is found beside the adapter it talks to.

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use vigil_config as config;
use vigil_core as core;
use vigil_fall as fall;
use vigil_runtime::{journal, voice};

pub mod demo;

/// The unit's modem, and the simulated module and network.
pub mod modem {
    pub use vigil_runtime::modem::*;

    pub mod network;
    pub mod sim;
    mod sim_voice;
}

/// The unit's radio, and the simulated pendant.
pub mod radio {
    pub use vigil_runtime::radio::*;

    pub mod pendant;
    mod pendant_cli;

    pub use pendant_cli::{pendant, PendantAction, PendantArgs};
}

/// The unit's routes, and the simulated receiving centre.
pub mod centre {
    pub use vigil_runtime::centre::*;

    pub mod receiver;
}

/// The unit's runtime, and the simulated site around it.
pub mod runtime {
    pub use vigil_runtime::runtime::*;

    pub mod simsite;
}
