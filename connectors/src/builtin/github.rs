//! `github`: create an issue, list repositories, and a polling trigger on new issues (GitHub REST API). (Being built.)
