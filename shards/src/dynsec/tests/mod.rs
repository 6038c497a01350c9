//! Cross-module tests of dynamic security.
