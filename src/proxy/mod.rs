//! The mirroring proxy: listener, primary forwarding, shadow dispatch, body buffering, hot reload.
