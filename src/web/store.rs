//! The SQL of the web role that no concern owns (listing checks with their
//! state, reading results). History and tokens have their own store files.
