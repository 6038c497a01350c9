//! Requests published to `$CONTROL/...` topics, on their way from a shard to the thread
//! that owns the state they change.
//!
//! A shard never routes a client's `$CONTROL/...` publish to subscribers (Mosquitto core,
//! `dynsec.md` §3.2); when a handler owns the topic the shard forwards the payload here as a
//! [`ControlRequest`] over a channel. Placement: the sender side is held by every shard;
//! the receiver by the owner's thread (today the dynamic-security service, later the
//! replication core). The answer comes back as mesh control messages to the requesting
//! shard, which publishes it, so the response travels the normal publish path.

use crate::mesh::ShardId;
use crate::mqtt::{ByteStr, Bytes};

/// Request topic of the dynamic-security API.
pub const DYNSEC_TOPIC: &str = "$CONTROL/dynamic-security/v1";

/// Response topic of the dynamic-security API.
pub const DYNSEC_RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

/// Request topic of the cluster control API.
pub const HA_TOPIC: &str = "$CONTROL/cedalo/ha/v1";

/// Response topic of the cluster control API.
pub const HA_RESPONSE_TOPIC: &str = "$CONTROL/cedalo/ha/v1/response";

/// Which API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlTopic {
    /// `$CONTROL/dynamic-security/v1`.
    Dynsec,
    /// `$CONTROL/cedalo/ha/v1`.
    Ha,
}

impl ControlTopic {
    /// The API a publish topic is the request topic of, if any.
    pub fn of(topic: &str) -> Option<ControlTopic> {
        match topic {
            DYNSEC_TOPIC => Some(ControlTopic::Dynsec),
            HA_TOPIC => Some(ControlTopic::Ha),
            _ => None,
        }
    }

    /// Where its responses go.
    pub fn response_topic(self) -> &'static str {
        match self {
            ControlTopic::Dynsec => DYNSEC_RESPONSE_TOPIC,
            ControlTopic::Ha => HA_RESPONSE_TOPIC,
        }
    }
}

/// One control publish.
#[derive(Debug)]
pub struct ControlRequest {
    /// Which API.
    pub topic: ControlTopic,
    /// The request payload (JSON).
    pub payload: Bytes,
    /// Client id of the publisher.
    pub client_id: ByteStr,
    /// User name of the publisher.
    pub username: Option<ByteStr>,
    /// The shard the request came in on; it publishes the response.
    pub shard: ShardId,
}

/// What the control service receives.
#[derive(Debug)]
pub enum ServiceMsg {
    /// A control publish from a shard.
    Request(ControlRequest),
    /// The rest of the access policy changed (reload): rebuild and hand it to the shards.
    Rebase(Box<crate::access::AccessPolicy>),
}

/// Where a shard sends control requests; `None` when no handler is configured.
pub type ControlPort = Option<std::sync::mpsc::Sender<ServiceMsg>>;
