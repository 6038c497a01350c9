//! Topic names, filters and the subscription index.
