//! Chunk segment files: full chunks appended to preallocated files that are memory-mapped for reading. Owned by the chunks work.
