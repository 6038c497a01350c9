//! Property blocks (§2.2.2): identifiers, types, and duplicate detection.
