//! The running lab: wires proxy, capture and analysis together. Both the desktop app and the
//! headless `mirrorlab run` drive it: commands in, snapshots out.
