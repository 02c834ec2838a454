//! Exports of captured traffic and analysis: the JSON report and HAR.
