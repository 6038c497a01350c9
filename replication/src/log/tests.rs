//! Tests of the log against real files.
