//! `infralab web` (placeholder while the edge is built).
