//! `infralab lb` (placeholder while the edge is built).
