//! The Contact ID route (SIA DC-05): DTMF over a cellular voice call, kissoff, then speech.
