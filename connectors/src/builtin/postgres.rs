//! `postgres`: a parameterised query against a user's own Postgres database. (Being built.)
