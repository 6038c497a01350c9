//! Variable byte integers and length-prefixed strings (§1.5).
