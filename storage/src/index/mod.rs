//! Symbols, postings and the block index format.
