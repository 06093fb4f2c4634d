//! Durable journal of alarms and their delivery (SQLite, WAL, synchronous=FULL).
