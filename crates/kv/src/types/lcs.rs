//! The longest common subsequence of two strings (`LCS`): the classic dynamic program.
//!
//! `table[i][j]` is the length of the LCS of the first `i` bytes of `a` and the first `j`
//! of `b`: one more than `table[i-1][j-1]` if `a[i-1] == b[j-1]`, else the larger of
//! `table[i-1][j]` and `table[i][j-1]`. Filling it is O(|a|·|b|) time and memory; walking
//! back from the bottom-right corner (diagonally on a match, towards the larger
//! neighbour otherwise) spells the subsequence backwards and finds the runs of
//! consecutive matches that `IDX` reports.
//!
//! The table is what a client can make the server allocate, so it is bounded: like
//! Redis, a table larger than [`TABLE_LIMIT`] bytes is refused with an error before any
//! allocation, and the allocation itself is fallible.

use proto::CommandError;

/// The largest table, in bytes: Redis's default `proto-max-bulk-len` (512 MiB).
pub const TABLE_LIMIT: u64 = 512 * 1024 * 1024;

/// One run of consecutive matching bytes (inclusive ranges), last run first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub a: (usize, usize),
    pub b: (usize, usize),
    pub len: usize,
}

/// What `LCS` computes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub len: usize,
    /// The subsequence itself (empty unless asked for).
    pub text: Vec<u8>,
    /// The runs at least `min_run` long, from the end of the strings backwards.
    pub runs: Vec<Run>,
}

fn too_big() -> CommandError {
    CommandError::err("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
}

/// Computes the LCS of `a` and `b`; `walk`: also spell it and find its runs (runs
/// shorter than `min_run` are left out).
pub fn lcs(a: &[u8], b: &[u8], walk: bool, min_run: usize) -> Result<Answer, CommandError> {
    if a.len() as u64 >= u64::from(u32::MAX) - 1 || b.len() as u64 >= u64::from(u32::MAX) - 1 {
        return Err(CommandError::err("String too long for LCS"));
    }
    let width = b.len() + 1;
    let cells = (a.len() as u64 + 1) * width as u64;
    if cells.saturating_mul(4) > TABLE_LIMIT {
        return Err(too_big());
    }
    let mut table: Vec<u32> = Vec::new();
    table
        .try_reserve_exact(cells as usize)
        .map_err(|_| too_big())?;
    table.resize(cells as usize, 0);
    let at = |i: usize, j: usize| i * width + j;
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[at(i, j)] = if a[i - 1] == b[j - 1] {
                table[at(i - 1, j - 1)] + 1
            } else {
                table[at(i - 1, j)].max(table[at(i, j - 1)])
            };
        }
    }
    let len = table[at(a.len(), b.len())] as usize;
    let mut answer = Answer {
        len,
        ..Answer::default()
    };
    if !walk {
        return Ok(answer);
    }
    let mut text = vec![0u8; len];
    let mut left = len;
    // The run being followed: (a start, a end, b start, b end).
    let mut run: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let emit;
        if a[i - 1] == b[j - 1] {
            left -= 1;
            text[left] = a[i - 1];
            run = Some(match run {
                None => (i - 1, i - 1, j - 1, j - 1),
                // Walking back diagonally extends the run.
                Some((a0, a1, b0, b1)) => (a0 - 1, a1, b0 - 1, b1),
            });
            emit = run.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0);
            i -= 1;
            j -= 1;
        } else {
            if table[at(i - 1, j)] > table[at(i, j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit && let Some((a0, a1, b0, b1)) = run.take() {
            let run_len = a1 - a0 + 1;
            if run_len >= min_run {
                answer.runs.push(Run {
                    a: (a0, a1),
                    b: (b0, b1),
                    len: run_len,
                });
            }
        }
    }
    answer.text = text;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's documentation example.
    #[test]
    fn ohmytext_and_mynewtext() {
        let got = lcs(b"ohmytext", b"mynewtext", true, 0).unwrap();
        assert_eq!(got.len, 6);
        assert_eq!(got.text, b"mytext");
        assert_eq!(
            got.runs,
            vec![
                Run {
                    a: (4, 7),
                    b: (5, 8),
                    len: 4
                },
                Run {
                    a: (2, 3),
                    b: (0, 1),
                    len: 2
                },
            ]
        );
        let long_only = lcs(b"ohmytext", b"mynewtext", true, 4).unwrap();
        assert_eq!(long_only.runs.len(), 1);
        assert_eq!(lcs(b"", b"abc", true, 0).unwrap().len, 0);
    }

    #[test]
    fn a_table_over_the_limit_is_refused_before_allocating() {
        let big = vec![b'x'; 20_000];
        let err = lcs(&big, &big, false, 0).unwrap_err();
        assert!(format!("{err:?}").contains("Insufficient memory"));
    }
}
