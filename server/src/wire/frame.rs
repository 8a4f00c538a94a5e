//! Frame splitting. Tells an *incomplete* frame (wait for more bytes) from an
//! *invalid* one (close the connection); and taking writable parts out of a request
//! frame without copying them: Produce hands the storage each partition's records as
//! a `BytesMut` (storage patches offsets in place), and when nothing but those records
//! refers to the frame any more, the frame is split into their disjoint ranges instead
//! of copied.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// A frame that can never become valid.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix exceeds `socket.request.max.bytes`.
    TooLarge { size: i64, max: usize },
    /// The size prefix is negative or too small to hold a request header.
    BadSize(i32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { size, max } => {
                write!(
                    f,
                    "frame of {size} bytes exceeds socket.request.max.bytes {max}"
                )
            }
            FrameError::BadSize(s) => write!(f, "invalid frame size {s}"),
        }
    }
}

/// Smallest possible request: api key, version, correlation id, client id length.
const REQUEST_BYTES_MIN: i32 = 10;

/// How many more bytes the frame at the front of `buf` needs, or an error if the size
/// prefix is invalid. `Ok(0)` means a whole frame is buffered.
pub fn missing_bytes(buf: &[u8], max: usize) -> Result<usize, FrameError> {
    if buf.len() < 4 {
        return Ok(4 - buf.len());
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < REQUEST_BYTES_MIN {
        return Err(FrameError::BadSize(size));
    }
    if size as usize > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    Ok((4 + size as usize).saturating_sub(buf.len()))
}

/// Splits one whole frame (without its size prefix) off the front of `buf`.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    if missing_bytes(buf, max)? > 0 {
        return Ok(None);
    }
    let size = (&buf[..4]).get_i32() as usize;
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

/// The smallest share of a request frame one part must be to be taken out of it
/// without a copy. A part keeps the whole frame's memory alive while it sits in a
/// partition's tail cache, so a cache's memory stays within this many times its byte
/// budget. 16 lets a request for 8 or fewer partitions of equal batches share (its
/// headers make each part a little under an eighth).
pub const SHARE_MIN: usize = 16;

/// Makes each of `slices` writable, in order. A slice of `frame` is split out of it
/// without a copy when the frame is no longer shared, the slices are disjoint and the
/// slice is at least 1/[`SHARE_MIN`] of the frame; any other slice is copied.
pub fn take_parts(frame: Option<Bytes>, slices: Vec<Bytes>) -> Vec<BytesMut> {
    let copy = |b: &Bytes| BytesMut::from(&b[..]);
    let Some(frame) = frame else {
        return slices.iter().map(copy).collect();
    };
    let (base, len) = (frame.as_ptr() as usize, frame.len());
    let in_frame = |b: &Bytes| {
        let start = (b.as_ptr() as usize).wrapping_sub(base);
        (start <= len && b.len() <= len - start).then(|| start..start + b.len())
    };
    // In-frame slices become their ranges (dropping those references to the frame).
    let mut parts: Vec<Option<BytesMut>> = Vec::with_capacity(slices.len());
    let mut ranges: Vec<(usize, Range<usize>)> = Vec::new();
    for (i, b) in slices.into_iter().enumerate() {
        match in_frame(&b) {
            Some(r) => {
                ranges.push((i, r));
                parts.push(None);
            }
            None => parts.push(Some(copy(&b))),
        }
    }
    ranges.sort_by_key(|(_, r)| r.start);
    let disjoint = ranges.windows(2).all(|w| w[0].1.end <= w[1].1.start);
    match frame.try_into_mut() {
        Ok(mut whole) if disjoint => {
            let mut consumed = 0;
            for (i, r) in ranges {
                let _ = whole.split_to(r.start - consumed);
                let part = whole.split_to(r.len());
                parts[i] = Some(if part.len() * SHARE_MIN >= len {
                    part
                } else {
                    BytesMut::from(&part[..])
                });
                consumed = r.end;
            }
        }
        Ok(whole) => {
            for (i, r) in ranges {
                parts[i] = Some(BytesMut::from(&whole[r]));
            }
        }
        Err(frame) => {
            for (i, r) in ranges {
                parts[i] = Some(BytesMut::from(&frame[r]));
            }
        }
    }
    parts.into_iter().map(Option::unwrap_or_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_whole_and_invalid() {
        let mut b = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(split_frame(&mut b, 100), Ok(None));
        b.extend_from_slice(&[12]);
        assert_eq!(split_frame(&mut b, 100), Ok(None));
        assert_eq!(missing_bytes(&b, 100), Ok(12));
        b.extend_from_slice(&[1u8; 14]);
        let f = split_frame(&mut b, 100).expect("valid").expect("whole");
        assert_eq!(f.len(), 12);
        assert_eq!(b.len(), 2);

        let mut big = BytesMut::from(&0x7fff_ffffu32.to_be_bytes()[..]);
        assert!(matches!(
            split_frame(&mut big, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut neg = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(split_frame(&mut neg, 100), Err(FrameError::BadSize(-5)));
    }
}

#[cfg(test)]
mod parts_tests {
    use super::*;

    #[test]
    fn splits_an_unshared_frame_without_copying() {
        let frame = Bytes::from((0u8..100).collect::<Vec<u8>>());
        let (a, b) = (frame.slice(60..80), frame.slice(10..30));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let other = Bytes::from_static(b"elsewhere");
        let out = take_parts(Some(frame), vec![a, other, b]);
        assert_eq!(&out[0][..], &(60u8..80).collect::<Vec<u8>>()[..]);
        assert_eq!(&out[1][..], b"elsewhere");
        assert_eq!(&out[2][..], &(10u8..30).collect::<Vec<u8>>()[..]);
        assert_eq!(out[0].as_ptr(), pa, "taken out of the frame, not copied");
        assert_eq!(out[2].as_ptr(), pb);
    }

    #[test]
    fn copies_when_the_frame_is_still_shared_or_parts_overlap() {
        let frame = Bytes::from((0u8..100).collect::<Vec<u8>>());
        let elsewhere = frame.clone(); // e.g. a header field still pointing into it
        let a = frame.slice(5..9);
        let pa = a.as_ptr();
        let out = take_parts(Some(frame), vec![a]);
        assert_eq!(&out[0][..], &[5u8, 6, 7, 8]);
        assert_ne!(out[0].as_ptr(), pa);
        assert_eq!(elsewhere.len(), 100);
        // Overlapping slices (impossible from a decoder) and no frame: copies.
        let frame = Bytes::from(vec![7u8; 10]);
        let (x, y) = (frame.slice(0..6), frame.slice(4..10));
        let out = take_parts(Some(frame), vec![x, y]);
        assert_eq!((out[0].len(), out[1].len()), (6, 6));
        let out = take_parts(None, vec![Bytes::from_static(b"abc")]);
        assert_eq!(&out[0][..], b"abc");
    }

    #[test]
    fn small_parts_are_copied() {
        let frame = Bytes::from(vec![1u8; 160]);
        let small = frame.slice(0..5);
        let p = small.as_ptr();
        let out = take_parts(Some(frame), vec![small]);
        assert_ne!(out[0].as_ptr(), p, "under 1/16 of the frame");
    }
}
