//! Geohashing: a point on Earth as one number, so a sorted set can index places.
//!
//! ## The idea
//!
//! Cut the map in two along the Greenwich meridian: a point is either west (bit 0) or east
//! (bit 1). Cut its half in two along the equator: south (0) or north (1). Keep cutting,
//! alternating longitude and latitude: after 26 cuts of each, a point is named by 52 bits
//! and the cell they name is about 0.6 m × 0.6 m. Written one after the other (longitude
//! bits in the odd positions, latitude bits in the even ones: *interleaved*), the bits
//! form a **Z-order curve**: cells whose numbers share a prefix lie inside the same bigger
//! cell. So "everything inside this cell" is one range of numbers, and a sorted set —
//! ordered by score — answers it with a range scan. That is all `GEOADD` does: the
//! member's score is its 52-bit geohash (an integer below 2⁵², so a double holds it
//! exactly), and `ZRANGE ... WITHSCORES` on a geo key shows those integers, the same as
//! Redis's.
//!
//! ## Searching a radius
//!
//! A circle is not a cell, and a point just across a cell border from the centre has a
//! far-away number (the Z curve jumps). So a search ([`search_cells`]) picks the cell
//! size (the *step*: bits per coordinate) whose cells are at least as big as the radius
//! ([`steps_for_radius`]), takes the centre's cell and its eight **neighbours**, which
//! together cover the circle, and scans the nine ranges. Each candidate is then checked
//! with the real distance ([`distance`], the haversine formula on a sphere of Redis's
//! radius), so the cells only need to cover, not to fit.
//!
//! Latitudes stop at ±85.05112878° (the Web Mercator limit, as in Redis): the poles
//! cannot be indexed. Every formula here is Redis's, operation for operation, so scores,
//! positions and distances are bit-identical to redis-server's.

/// Bits per coordinate in a stored score: 26 + 26 = 52, the mantissa of a double.
pub const STEP_MAX: u8 = 26;
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
/// The Earth's quadratic mean radius for WGS-84, in metres (Redis's value).
pub const EARTH_RADIUS_M: f64 = 6_372_797.560_856;
/// Half the Earth's circumference in Web Mercator metres: the widest search.
const MERCATOR_MAX: f64 = 20_037_726.37;
/// Base-32 alphabet of standard geohash strings (no a, i, l, o).
const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// A cell: `step` bits of longitude and `step` of latitude, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub bits: u64,
    pub step: u8,
}

impl Cell {
    /// The cell's lowest 52-bit score: its bits followed by zeros. Every point inside the
    /// cell scores in `[self.min_score(), next cell's min_score())`.
    pub fn min_score(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }

    /// The first score past the cell.
    pub fn end_score(self) -> u64 {
        Cell {
            bits: self.bits + 1,
            step: self.step,
        }
        .min_score()
    }
}

/// An interval of degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub min: f64,
    pub max: f64,
}

/// The rectangle a cell covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub lon: Span,
    pub lat: Span,
}

const MERCATOR_LON: Span = Span {
    min: LON_MIN,
    max: LON_MAX,
};
const MERCATOR_LAT: Span = Span {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Spreads the low 32 bits of `v` to the even positions of a u64 (bit i → bit 2i), by
/// the usual shift-and-mask halving.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The inverse of [`spread`]: the even bits of `x`, packed.
fn squeeze(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Latitude bits in the even positions, longitude bits in the odd ones.
fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// `(latitude bits, longitude bits)`.
fn deinterleave(bits: u64) -> (u32, u32) {
    (squeeze(bits), squeeze(bits >> 1))
}

/// The cell of `step` bits per coordinate holding a point, within the given spans (the
/// Mercator ones for scores, the full ±90° ones for geohash strings). `None` outside
/// the indexable area.
fn encode_in(lon_span: Span, lat_span: Span, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_span.min) / (lat_span.max - lat_span.min) * scale;
    let lon_offset = (lon - lon_span.min) / (lon_span.max - lon_span.min) * scale;
    Some(Cell {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// The cell of a point at `step` (Mercator spans).
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Cell> {
    encode_in(MERCATOR_LON, MERCATOR_LAT, lon, lat, step)
}

/// The sorted-set score of a point: its 52-bit geohash (`None` outside the indexable
/// area; callers validate first).
pub fn score(lon: f64, lat: f64) -> Option<f64> {
    encode(lon, lat, STEP_MAX).map(|cell| cell.min_score() as f64)
}

/// Is this point indexable? (`GEOADD`'s "invalid longitude,latitude pair".)
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The rectangle of a cell.
pub fn area(cell: Cell) -> Area {
    let (ilat, ilon) = deinterleave(cell.bits);
    let scale = (1u64 << cell.step) as f64;
    let lat_scale = LAT_MAX - LAT_MIN;
    let lon_scale = LON_MAX - LON_MIN;
    let lat_next = ilat.wrapping_add(1);
    let lon_next = ilon.wrapping_add(1);
    Area {
        lat: Span {
            min: LAT_MIN + (f64::from(ilat) / scale) * lat_scale,
            max: LAT_MIN + (f64::from(lat_next) / scale) * lat_scale,
        },
        lon: Span {
            min: LON_MIN + (f64::from(ilon) / scale) * lon_scale,
            max: LON_MIN + (f64::from(lon_next) / scale) * lon_scale,
        },
    }
}

/// The position a score stands for: the centre of its cell (what `GEOPOS` answers,
/// within 0.6 m of what was added).
pub fn position(score: f64) -> (f64, f64) {
    let a = area(Cell {
        bits: score as u64,
        step: STEP_MAX,
    });
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// Moves a cell by one along longitude (`odd` bits) or latitude (even bits): add or
/// subtract one in those bits only, letting the carry jump over the other coordinate's
/// bits (they are filled with ones first, so the carry runs through them).
fn shift(cell: Cell, d: i8, odd: bool) -> Cell {
    if d == 0 {
        return cell;
    }
    let width = 64 - u32::from(cell.step) * 2;
    let (mine_mask, other_mask) = if odd {
        (0xAAAA_AAAA_AAAA_AAAA_u64, 0x5555_5555_5555_5555_u64)
    } else {
        (0x5555_5555_5555_5555_u64, 0xAAAA_AAAA_AAAA_AAAA_u64)
    };
    let mine = cell.bits & mine_mask;
    let other = cell.bits & other_mask;
    let fill = other_mask >> width;
    let moved = if d > 0 {
        mine.wrapping_add(fill + 1)
    } else {
        (mine | fill).wrapping_sub(fill + 1)
    };
    Cell {
        bits: (moved & (mine_mask >> width)) | other,
        step: cell.step,
    }
}

/// The eight cells around one, in Redis's order: north, south, east, west, north-east,
/// north-west, south-east, south-west.
pub fn neighbours(cell: Cell) -> [Cell; 8] {
    let at = |dlon: i8, dlat: i8| shift(shift(cell, dlon, true), dlat, false);
    [
        at(0, 1),
        at(0, -1),
        at(1, 0),
        at(-1, 0),
        at(1, 1),
        at(-1, 1),
        at(1, -1),
        at(-1, -1),
    ]
}

fn radians(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

fn degrees(radians: f64) -> f64 {
    radians / (std::f64::consts::PI / 180.0)
}

/// Great-circle distance in metres between two points (haversine formula).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lat1, lon1, lat2, lon2) = (radians(lat1), radians(lon1), radians(lat2), radians(lon2));
    let u = ((lat2 - lat1) / 2.0).sin();
    let v = ((lon2 - lon1) / 2.0).sin();
    2.0 * EARTH_RADIUS_M * (u * u + lat1.cos() * lat2.cos() * v * v).sqrt().asin()
}

/// The step whose cells are just bigger than `range_m` metres (fewer bits near the
/// poles, where a degree of longitude is short).
pub fn steps_for_radius(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return STEP_MAX;
    }
    let (mut range, mut step) = (range_m, 1i32);
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

/// What a search covers, in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// `BYRADIUS`: a circle.
    Radius(f64),
    /// `BYBOX`: a rectangle, width (east-west) and height (north-south).
    Box { width: f64, height: f64 },
}

/// A search area: a centre, an extent in the request's unit, and the unit in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub extent: Extent,
    /// Metres per unit (m 1, km 1000, ft 0.3048, mi 1609.34).
    pub unit: f64,
}

impl Shape {
    /// The `[min lon, min lat, max lon, max lat]` box around the shape.
    fn bounds(&self) -> [f64; 4] {
        let (height, width) = match self.extent {
            Extent::Radius(r) => (self.unit * r, self.unit * r),
            Extent::Box { width, height } => {
                (self.unit * (height / 2.0), self.unit * (width / 2.0))
            }
        };
        let lat_delta = degrees(height / EARTH_RADIUS_M);
        let lon_delta_top = degrees(width / EARTH_RADIUS_M / radians(self.lat + lat_delta).cos());
        let lon_delta_bottom =
            degrees(width / EARTH_RADIUS_M / radians(self.lat - lat_delta).cos());
        // The box is widest on the side nearer the equator.
        let lon_delta = if self.lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - lon_delta,
            self.lat - lat_delta,
            self.lon + lon_delta,
            self.lat + lat_delta,
        ]
    }

    /// The distance from the centre in metres if `(lon, lat)` is inside the shape.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.extent {
            Extent::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.unit).then_some(d)
            }
            Extent::Box { width, height } => {
                let lon_distance = distance(lon, lat, self.lon, lat);
                let lat_distance = distance(lon, lat, lon, self.lat);
                if lon_distance > width * self.unit / 2.0 || lat_distance > height * self.unit / 2.0
                {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// The cells to scan for a search, in the order Redis scans them: the centre's cell,
/// then its neighbours (north, south, east, west, north-east, north-west, south-east,
/// south-west), leaving out those the shape's bounding box does not reach and any
/// neighbour equal to the one scanned before it (huge radii make neighbours coincide).
pub fn search_cells(shape: &Shape) -> Vec<Cell> {
    let [min_lon, min_lat, max_lon, max_lat] = shape.bounds();
    let radius_m = match shape.extent {
        Extent::Radius(r) => r,
        Extent::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * shape.unit;
    let mut step = steps_for_radius(radius_m, shape.lat);
    let locate = |step| {
        // A valid centre always encodes; the zero cell is a harmless fallback.
        let cell = encode(shape.lon, shape.lat, step).unwrap_or(Cell { bits: 0, step });
        (cell, neighbours(cell))
    };
    let (mut cell, mut around) = locate(step);
    // If a neighbour does not reach the edge of the box, the cells are too small: one
    // step coarser doubles them.
    let [n, s, e, w] = [0, 1, 2, 3].map(|i| area(around[i]));
    let too_small =
        n.lat.max < max_lat || s.lat.min > min_lat || e.lon.max < max_lon || w.lon.min > min_lon;
    if step > 1 && too_small {
        step -= 1;
        (cell, around) = locate(step);
    }
    let mut keep = [true; 8];
    if step >= 2 {
        let a = area(cell);
        // Indices into `around`: N S E W NE NW SE SW.
        let mut drop = |indices: [usize; 3]| indices.iter().for_each(|&i| keep[i] = false);
        if a.lat.min < min_lat {
            drop([1, 6, 7]);
        }
        if a.lat.max > max_lat {
            drop([0, 4, 5]);
        }
        if a.lon.min < min_lon {
            drop([3, 7, 5]);
        }
        if a.lon.max > max_lon {
            drop([2, 6, 4]);
        }
    }
    let mut cells: Vec<Cell> = Vec::with_capacity(9);
    let candidates = std::iter::once(cell).chain(
        around
            .into_iter()
            .zip(keep)
            .filter_map(|(c, k)| k.then_some(c)),
    );
    for c in candidates {
        // Redis compares a neighbour with the neighbour scanned before it, never with
        // the centre.
        if cells.len() < 2 || cells.last() != Some(&c) {
            cells.push(c);
        }
    }
    cells
}

/// The standard 11-character geohash string of a stored score (`GEOHASH`): the point is
/// re-encoded with the full ±90° latitude span that geohash.org uses (scores use the
/// Mercator span), 52 bits as ten base-32 digits, and a final `0` as Redis pads it.
pub fn geohash_string(score: f64) -> [u8; 11] {
    let (lon, lat) = position(score);
    let full_lat = Span {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode_in(MERCATOR_LON, full_lat, lon, lat, STEP_MAX).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, digit) in out.iter_mut().take(10).enumerate() {
        let index = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *digit = ALPHABET[index as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (lat, lon) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ff_ffff, 0x155_5555),
            (7, 9),
        ] {
            assert_eq!(deinterleave(interleave(lat, lon)), (lat, lon));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
    }

    /// Redis's own example: Palermo scores 3479099956230698 and comes back as
    /// 13.361389338970184, 38.115556395496299; GEOHASH answers sqc8b49rny0.
    #[test]
    fn palermo_as_redis_stores_it() {
        let s = score(13.361389, 38.115556).unwrap();
        assert_eq!(s, 3_479_099_956_230_698.0);
        let (lon, lat) = position(s);
        assert!((lon - 13.361_389).abs() < 1e-5 && (lat - 38.115_556).abs() < 1e-5);
        assert_eq!(&geohash_string(s), b"sqc8b49rny0");
        let catania = score(15.087269, 37.502669).unwrap();
        let (lon2, lat2) = position(catania);
        let d = distance(lon, lat, lon2, lat2);
        assert!((d - 166_274.151_6).abs() < 0.001, "{d}");
    }

    #[test]
    fn neighbours_surround_a_cell() {
        let cell = encode(10.0, 10.0, 10).unwrap();
        let a = area(cell);
        let [n, s, e, w, ne, nw, se, sw] = neighbours(cell).map(area);
        assert_eq!(n.lat.min, a.lat.max);
        assert_eq!(s.lat.max, a.lat.min);
        assert_eq!(e.lon.min, a.lon.max);
        assert_eq!(w.lon.max, a.lon.min);
        assert_eq!((ne.lat.min, ne.lon.min), (a.lat.max, a.lon.max));
        assert_eq!((nw.lat.min, nw.lon.max), (a.lat.max, a.lon.min));
        assert_eq!((se.lat.max, se.lon.min), (a.lat.min, a.lon.max));
        assert_eq!((sw.lat.max, sw.lon.max), (a.lat.min, a.lon.min));
    }

    #[test]
    fn a_search_covers_its_circle() {
        let shape = Shape {
            lon: 15.0,
            lat: 37.0,
            extent: Extent::Radius(200.0),
            unit: 1000.0,
        };
        let cells = search_cells(&shape);
        assert!(!cells.is_empty() && cells.len() <= 9);
        // Every point of the circle's rim lies in one of the cells.
        for k in 0..36 {
            let angle = f64::from(k) * 10.0_f64.to_radians();
            let lat = 37.0 + 1.79 * angle.sin();
            let lon = 15.0 + 2.24 * angle.cos();
            let s = score(lon, lat).unwrap() as u64;
            assert!(
                cells
                    .iter()
                    .any(|c| (c.min_score()..c.end_score()).contains(&s)),
                "{lon},{lat}"
            );
        }
    }

    #[test]
    fn steps_shrink_with_the_radius() {
        assert_eq!(steps_for_radius(0.0, 0.0), 26);
        assert!(steps_for_radius(100.0, 0.0) > steps_for_radius(100_000.0, 0.0));
        assert_eq!(steps_for_radius(1e9, 0.0), 1);
        assert!(steps_for_radius(1000.0, 85.0) < steps_for_radius(1000.0, 0.0));
    }
}
