//! Demo upstream services (a Bookinfo-like reviews service) and a traffic generator.
