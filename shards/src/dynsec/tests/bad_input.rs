//! Bad input: each malformed request gets the spec error and changes nothing.
