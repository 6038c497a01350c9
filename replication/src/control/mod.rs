//! The `$CONTROL/cedalo/ha/v1` control API: commands parsed and validated from a request's
//! JSON, and responses rendered, without touching the cluster (pure).
