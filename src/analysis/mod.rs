//! Statistics, pairing and primary-versus-shadow diffs, computed off the request path.
