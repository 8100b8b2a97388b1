//! The only place with `unsafe` memory-mapping code.
