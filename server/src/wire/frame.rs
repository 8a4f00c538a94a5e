//! Frame splitting. Tells an *incomplete* frame (wait for more bytes) from an
//! *invalid* one (close the connection).

use bytes::{Buf, BytesMut};

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
