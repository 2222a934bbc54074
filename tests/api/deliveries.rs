//! Outbound deliveries of changes to the application (a sink the test starts).
