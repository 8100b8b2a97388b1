//! The database: head plus blocks.
