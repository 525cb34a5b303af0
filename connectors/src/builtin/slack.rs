//! `slack`: post a message, list channels (Slack Web API). (Being built.)
