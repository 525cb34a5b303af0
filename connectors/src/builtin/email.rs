//! `email`: send mail through SMTP with lettre. (Being built.)
