//! A geo set is a sorted set whose scores are geohashes (see [`super::geohash`]): this
//! module searches one (`GEOSEARCH`, `GEORADIUS` and their STORE forms).
//!
//! A search scans the few score ranges of the cells covering the shape
//! ([`geohash::search_cells`]), keeps the members really inside it, then sorts by
//! distance if asked. Each range is located in O(log n) in the sorted set's order and
//! walked in order, so a search costs O(log n + candidates), not O(n).

use bytes::Bytes;
use proto::CommandError;

use super::geohash::{self, Extent, Shape};
use super::zset::ZSet;

/// Where a search is centred.
#[derive(Debug, Clone, PartialEq)]
pub enum Center {
    /// `FROMMEMBER` / `GEORADIUSBYMEMBER`: a member's own position.
    Member(Bytes),
    /// `FROMLONLAT` / `GEORADIUS`.
    LonLat(f64, f64),
}

/// `ASC`/`DESC` by distance, or the order of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Unsorted,
    Asc,
    Desc,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub center: Center,
    pub extent: Extent,
    /// Metres per unit of the extent and of the distances replied.
    pub unit: f64,
    pub order: Order,
    /// At most this many results (0: all).
    pub count: usize,
    /// `COUNT n ANY`: stop scanning once `count` matches are found (not the nearest).
    pub any: bool,
}

/// One member found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub member: Bytes,
    /// The stored 52-bit geohash.
    pub score: f64,
    pub lon: f64,
    pub lat: f64,
    /// From the centre, in the query's unit.
    pub dist: f64,
}

/// Redis's reply when a centre member is not in the set.
pub fn no_member() -> CommandError {
    CommandError::err("could not decode requested zset member")
}

impl Query {
    /// Runs the search on a geo set: members inside the shape, sorted and cut to `count`
    /// as asked.
    pub fn run(&self, z: &ZSet) -> Result<Vec<Found>, CommandError> {
        let (lon, lat) = match &self.center {
            Center::LonLat(lon, lat) => (*lon, *lat),
            Center::Member(m) => geohash::position(z.score(m).ok_or_else(no_member)?),
        };
        let shape = Shape {
            lon,
            lat,
            extent: self.extent,
            unit: self.unit,
        };
        let limit = if self.any { self.count } else { 0 };
        let mut found = Vec::new();
        for cell in geohash::search_cells(&shape) {
            if limit > 0 && found.len() >= limit {
                break;
            }
            scan_cell(z, &shape, cell, limit, &mut found);
        }
        // COUNT without an order means the nearest ones (unless ANY).
        let order = match self.order {
            Order::Unsorted if self.count > 0 && !self.any => Order::Asc,
            order => order,
        };
        // Stable sorts, as glibc's qsort (a merge sort) is in Redis.
        match order {
            Order::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
            Order::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
            Order::Unsorted => {}
        }
        if self.count > 0 {
            found.truncate(self.count);
        }
        for f in &mut found {
            f.dist /= self.unit;
        }
        Ok(found)
    }
}

/// Appends the members scored inside `cell` that lie within `shape` (distance in metres),
/// stopping at `limit` results in all (0: no limit).
fn scan_cell(z: &ZSet, shape: &Shape, cell: geohash::Cell, limit: usize, out: &mut Vec<Found>) {
    let (min, end) = (cell.min_score() as f64, cell.end_score() as f64);
    let order = z.order();
    let first = order.count_below(|score, _| score < min);
    for (score, member) in order.iter_from(first, false) {
        if score >= end {
            break;
        }
        let (lon, lat) = geohash::position(score);
        if let Some(dist) = shape.contains(lon, lat) {
            out.push(Found {
                member: member.clone(),
                score,
                lon,
                lat,
                dist,
            });
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
}
