//! SIA DC-09 over TCP and UDP: framing, CRC-16/ARC, optional AES-CBC, ACK/NAK/DUH.
