//! Everything a Culex per-core executor owns: the MQTT codec, topic index, sessions,
//! connection state machine and the cross-core mesh.

pub mod dynsec;
pub mod mqtt;
pub mod topics;
