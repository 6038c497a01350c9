//! Property test of the compiled ACL snapshot against a plain evaluation of spec §8.2.
