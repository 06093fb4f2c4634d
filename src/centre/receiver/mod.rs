//! Simulated IP receiving centre: a SCAIP receiver (registrar and alarm handler) and a DC-09 receiver.
