//! Column compression for immutable blocks: one chunk holds the timestamps
//! and values of one series over a time range.
//!
//! Timestamps: regular intervals cost a fixed 2 varints; otherwise pcodec
//! (`pco`) with its automatic delta encoding (delta-of-delta for scrapes with
//! jitter). Values: like VictoriaMetrics, floats that were decimal numbers are
//! turned into integer mantissas with one shared decimal scale per chunk,
//! then pcodec compresses the integers (it detects delta order itself).
//! Values that are not decimal (NaN, staleness markers, ±Inf, -0.0) are kept
//! bit-exact in an exception list. Gorilla XOR was not enough to reach the
//! bytes-per-sample bar; see FORMAT.md for the byte layout.

use super::encoding::{DResult, DecodeError, Reader, put_bytes, put_uvarint, put_varint};
use crate::model::Sample;

const TS_REGULAR: u8 = 0;
const TS_PCO: u8 = 1;
const V_CONST: u8 = 0;
const V_DECIMAL: u8 = 1;
const V_FLOAT: u8 = 2;

/// Largest decimal scale tried: mantissas must stay within 2^53 anyway.
const MAX_SCALE: usize = 18;
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
/// Upper bound on samples per chunk accepted when decoding (guards allocations).
pub const MAX_CHUNK_SAMPLES: usize = 1 << 20;
const PCO_LEVEL: usize = 8;

fn decode_decimal(m: i64, scale: usize) -> f64 {
    // Division by an exact power of ten is correctly rounded, so this gives
    // the float nearest to the decimal `m * 10^-scale`, as a parser would.
    m as f64 / POW10[scale]
}

fn mantissa(v: f64, scale: usize) -> Option<i64> {
    let m = (v * POW10[scale]).round();
    if !m.is_finite() || m.abs() > MAX_EXACT {
        return None;
    }
    let m = m as i64;
    (decode_decimal(m, scale).to_bits() == v.to_bits()).then_some(m)
}

/// The smallest scale at which `v` is an exact decimal.
fn min_scale(v: f64) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_SCALE).find(|&s| mantissa(v, s).is_some())
}

fn pco_err(e: pco::errors::PcoError) -> DecodeError {
    DecodeError {
        offset: 0,
        what: format!("pcodec: {e}"),
    }
}

/// Decodes exactly `n` numbers. Decoding into a buffer sized from our own
/// header keeps a corrupt pcodec header from asking for a huge allocation.
fn pco_decode<T: pco::data_types::Number>(src: &[u8], n: usize) -> DResult<Vec<T>> {
    let mut dst = vec![T::default(); n];
    // pcodec can hit arithmetic-overflow panics on corrupt input (checked
    // builds); chunks are checksummed, so this is a last line of defence.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pco::standalone::simple_decompress_into(src, &mut dst)
    }));
    let p = match res {
        Ok(r) => r.map_err(pco_err)?,
        Err(_) => {
            return Err(DecodeError {
                offset: 0,
                what: "pcodec panicked on corrupt column data".into(),
            });
        }
    };
    if p.n_processed != n || !p.finished {
        return Err(DecodeError {
            offset: 0,
            what: format!("pcodec column holds a different count than the {n} in the chunk header"),
        });
    }
    Ok(dst)
}

/// Appends the encoded chunk for `samples` (ascending by time, non-empty).
pub fn encode_chunk(samples: &[Sample], out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    encode_timestamps(samples, out);
    encode_values(samples, out);
}

fn encode_timestamps(samples: &[Sample], out: &mut Vec<u8>) {
    let t0 = samples[0].t;
    let delta = if samples.len() > 1 {
        samples[1].t.wrapping_sub(t0)
    } else {
        0
    };
    let regular = delta >= 0
        && samples
            .windows(2)
            .all(|w| w[1].t.wrapping_sub(w[0].t) == delta);
    if regular {
        out.push(TS_REGULAR);
        put_varint(out, t0);
        put_uvarint(out, delta as u64);
        return;
    }
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    // pco only fails on invalid configs; the default config is valid.
    match pco::standalone::simpler_compress(&ts, PCO_LEVEL) {
        Ok(b) => {
            out.push(TS_PCO);
            put_bytes(out, &b);
        }
        Err(e) => unreachable!("pcodec rejected its default config: {e}"),
    }
}

fn encode_values(samples: &[Sample], out: &mut Vec<u8>) {
    let first = samples[0].v.to_bits();
    if samples.iter().all(|s| s.v.to_bits() == first) {
        out.push(V_CONST);
        out.extend_from_slice(&first.to_le_bytes());
        return;
    }
    let mut scale = 0usize;
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    let mut decimal = true;
    for (i, s) in samples.iter().enumerate() {
        if !s.v.is_finite() || (s.v == 0.0 && s.v.is_sign_negative()) {
            exceptions.push((i, s.v.to_bits()));
            continue;
        }
        match min_scale(s.v) {
            Some(k) => scale = scale.max(k),
            None => {
                decimal = false;
                break;
            }
        }
    }
    if decimal {
        let mut ms = Vec::with_capacity(samples.len());
        let mut prev = 0i64;
        let mut ex = exceptions.iter().peekable();
        for (i, s) in samples.iter().enumerate() {
            if ex.peek().is_some_and(|(j, _)| *j == i) {
                ex.next();
                ms.push(prev); // keeps deltas small around the exception
                continue;
            }
            match mantissa(s.v, scale) {
                Some(m) => {
                    prev = m;
                    ms.push(m);
                }
                None => {
                    decimal = false;
                    break;
                }
            }
        }
        if decimal {
            out.push(V_DECIMAL);
            out.push(scale as u8);
            match pco::standalone::simpler_compress(&ms, PCO_LEVEL) {
                Ok(b) => put_bytes(out, &b),
                Err(e) => unreachable!("pcodec rejected its default config: {e}"),
            }
            put_exceptions(&exceptions, out);
            return;
        }
    }
    // Not decimal: compress the floats themselves, specials as exceptions.
    exceptions.clear();
    let mut vs = Vec::with_capacity(samples.len());
    let mut prev = 0.0f64;
    for (i, s) in samples.iter().enumerate() {
        if s.v.is_finite() {
            prev = s.v;
            vs.push(s.v);
        } else {
            exceptions.push((i, s.v.to_bits()));
            vs.push(prev);
        }
    }
    out.push(V_FLOAT);
    match pco::standalone::simpler_compress(&vs, PCO_LEVEL) {
        Ok(b) => put_bytes(out, &b),
        Err(e) => unreachable!("pcodec rejected its default config: {e}"),
    }
    put_exceptions(&exceptions, out);
}

fn put_exceptions(ex: &[(usize, u64)], out: &mut Vec<u8>) {
    put_uvarint(out, ex.len() as u64);
    let mut prev = 0usize;
    for &(i, bits) in ex {
        put_uvarint(out, (i - prev) as u64);
        prev = i;
        out.extend_from_slice(&bits.to_le_bytes());
    }
}

/// Decodes one chunk written by [`encode_chunk`], appending to `out`.
pub fn decode_chunk(buf: &[u8], out: &mut Vec<Sample>) -> DResult<()> {
    let mut r = Reader::new(buf);
    let n = r.len(MAX_CHUNK_SAMPLES)?;
    if n == 0 {
        return r.err("chunk with zero samples");
    }
    let ts: Vec<i64> = match r.u8()? {
        TS_REGULAR => {
            let t0 = r.varint()?;
            let d = r.uvarint()? as i64;
            (0..n as i64)
                .map(|i| t0.wrapping_add(d.wrapping_mul(i)))
                .collect()
        }
        TS_PCO => pco_decode::<i64>(r.len_bytes()?, n)?,
        k => return r.err(format!("unknown timestamp encoding {k}")),
    };
    let start = out.len();
    match r.u8()? {
        V_CONST => {
            let v = f64::from_bits(r.u64_le()?);
            out.extend(ts.iter().map(|&t| Sample { t, v }));
        }
        V_DECIMAL => {
            let scale = r.u8()? as usize;
            if scale > MAX_SCALE {
                return r.err(format!("decimal scale {scale} out of range"));
            }
            let ms = pco_decode::<i64>(r.len_bytes()?, n)?;
            out.extend(ts.iter().zip(ms).map(|(&t, m)| Sample {
                t,
                v: decode_decimal(m, scale),
            }));
            apply_exceptions(&mut r, &mut out[start..])?;
        }
        V_FLOAT => {
            let vs = pco_decode::<f64>(r.len_bytes()?, n)?;
            out.extend(ts.iter().zip(vs).map(|(&t, v)| Sample { t, v }));
            apply_exceptions(&mut r, &mut out[start..])?;
        }
        k => return r.err(format!("unknown value encoding {k}")),
    }
    if !r.is_empty() {
        return r.err("trailing bytes after chunk");
    }
    Ok(())
}

fn apply_exceptions(r: &mut Reader<'_>, samples: &mut [Sample]) -> DResult<()> {
    let count = r.len(samples.len())?;
    let mut i = 0usize;
    for _ in 0..count {
        i = i.saturating_add(r.uvarint()? as usize);
        let bits = r.u64_le()?;
        match samples.get_mut(i) {
            Some(s) => s.v = f64::from_bits(bits),
            None => {
                return r.err(format!(
                    "exception index {i} beyond {} samples",
                    samples.len()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;

    fn round_trip(samples: &[Sample]) -> usize {
        let mut buf = Vec::new();
        encode_chunk(samples, &mut buf);
        let mut out = Vec::new();
        decode_chunk(&buf, &mut out).unwrap();
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(samples) {
            assert_eq!(a.t, b.t);
            assert_eq!(a.v.to_bits(), b.v.to_bits(), "value {} at {}", b.v, b.t);
        }
        buf.len()
    }

    #[test]
    fn special_values_round_trip_bit_exact() {
        let vals = [
            1.5,
            f64::from_bits(STALE_NAN_BITS),
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            2.25,
        ];
        let s: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                t: 1000 + i as i64 * 15_000,
                v,
            })
            .collect();
        round_trip(&s);
        // Non-decimal floats take the float path.
        let s: Vec<Sample> = (0..100)
            .map(|i| Sample {
                t: i * 15_000 + (i % 3),
                v: (i as f64).sqrt() / 7.0,
            })
            .collect();
        round_trip(&s);
        let s: Vec<Sample> = (0..10)
            .map(|i| Sample {
                t: i,
                v: f64::from_bits(STALE_NAN_BITS),
            })
            .collect();
        round_trip(&s);
        round_trip(&[
            Sample { t: -5, v: 1e300 },
            Sample {
                t: 7,
                v: 123456789.125,
            },
        ]);
        round_trip(&[Sample {
            t: i64::MAX,
            v: 3.0,
        }]);
    }

    #[test]
    fn regular_counters_are_small() {
        let s: Vec<Sample> = (0..480)
            .map(|i| Sample {
                t: 1_700_000_000_000 + i * 15_000,
                v: 1000.0 + i as f64 * 3.0,
            })
            .collect();
        let n = round_trip(&s);
        assert!(n < 60, "{n} bytes for a perfectly regular counter");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let s: Vec<Sample> = (0..50)
            .map(|i| Sample {
                t: i * 15_000 + (i * 7 % 5),
                v: i as f64 * 0.25,
            })
            .collect();
        let mut buf = Vec::new();
        encode_chunk(&s, &mut buf);
        for cut in 0..buf.len() {
            let _ = decode_chunk(&buf[..cut], &mut Vec::new());
        }
        // Flips in our own framing; flips inside pcodec's bytes may panic in
        // checked builds (caught in pco_decode, but noisy in test output).
        for i in (0..4).chain([buf.len() - 1]) {
            let mut b = buf.clone();
            b[i] ^= 0x5a;
            let _ = decode_chunk(&b, &mut Vec::new());
        }
        assert!(decode_chunk(&[], &mut Vec::new()).is_err());
    }
}
