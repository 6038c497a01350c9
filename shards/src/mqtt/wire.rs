//! Variable byte integers, two-byte-length-prefixed strings and binary data (§1.5), and the
//! bounds-checked [`Reader`] every packet decoder reads its fields with.
//!
//! Owns: the primitive data representations of MQTT. Called by `properties` and every
//! module under `packet`. Decoding never panics: every read checks the bytes left in the
//! packet and reports a short field as `DecodeError::Malformed`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::{ByteStr, DecodeError, EncodeError, PacketId};

/// The largest value a variable byte integer can express (§1.5.5): 268,435,455.
pub(crate) const VARINT_MAX: usize = 268_435_455;

/// The longest string or binary field (two-byte length prefix, §1.5.4, §1.5.6).
pub(crate) const STRING_LEN_MAX: usize = u16::MAX as usize;

const FIELD_TRUNCATED: DecodeError =
    DecodeError::Malformed("§1.5 a field runs past the end of the packet");
const VARINT_TOO_LONG: DecodeError =
    DecodeError::Malformed("§1.5.5 variable byte integer longer than 4 bytes");

/// Parses a variable byte integer from the front of `bytes`: `Ok(Some((value, len)))`, or
/// `Ok(None)` when `bytes` ends before the last byte of the integer. Non-minimal encodings
/// are accepted (Mosquitto accepts them too); a fifth byte is Malformed even before it
/// arrives, because the fourth byte already announced it.
pub(crate) fn read_varint(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (index, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(VARINT_TOO_LONG);
    }
    Ok(None)
}

/// Number of bytes the minimal encoding of `value` takes (1 to 4).
pub(crate) fn varint_len(value: usize) -> usize {
    debug_assert!(value <= VARINT_MAX);
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends the minimal encoding of `value`. Callers checked `value <= VARINT_MAX` while
/// computing the packet's layout.
pub(crate) fn put_varint(out: &mut BytesMut, value: usize) {
    assert!(
        value <= VARINT_MAX,
        "variable byte integer out of range: {value}"
    );
    let mut rest = value;
    loop {
        // Truncation is the point: the low seven bits go out first.
        let byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Reports a Protocol Error as a Malformed Packet: the code Mosquitto answers for a
/// packet identifier 0 in SUBSCRIBE and UNSUBSCRIBE (both are allowed; a drop-in answers
/// the same).
pub(crate) fn malformed(error: DecodeError) -> DecodeError {
    match error {
        DecodeError::Protocol(why) => DecodeError::Malformed(why),
        other => other,
    }
}

/// Wire size of a string or binary field holding `len` bytes, or `TooLarge` beyond 65,535.
pub(crate) fn string_len(len: usize) -> Result<usize, EncodeError> {
    if len > STRING_LEN_MAX {
        return Err(EncodeError::TooLarge);
    }
    Ok(2 + len)
}

/// Appends a two-byte length prefix and `bytes`. The length was checked by [`string_len`].
pub(crate) fn put_string(out: &mut BytesMut, bytes: &[u8]) {
    assert!(
        bytes.len() <= STRING_LEN_MAX,
        "string longer than 65535 bytes"
    );
    // In range: asserted just above.
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

/// Wire size of a remaining length, with the check that it fits a variable byte integer.
pub(crate) fn checked_remaining(remaining: usize) -> Result<usize, EncodeError> {
    if remaining > VARINT_MAX {
        return Err(EncodeError::TooLarge);
    }
    Ok(remaining)
}

/// A cursor over one whole packet. Values that outlive the decode (strings, binary data,
/// payloads) are `Bytes` slices of `frame`, so they share its buffer without copying.
pub(crate) struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `frame[start..]`.
    pub(crate) fn new(frame: &'a Bytes, start: usize) -> Reader<'a> {
        debug_assert!(start <= frame.len());
        Reader {
            frame,
            pos: start.min(frame.len()),
            end: frame.len(),
        }
    }

    /// The packet this reader reads from.
    pub(crate) fn frame(&self) -> &'a Bytes {
        self.frame
    }

    /// Offset of the next byte within the frame.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// True when every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Splits the next `len` bytes off as a reader of their own (a property block) and
    /// skips them here.
    pub(crate) fn split(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        let end = self.advance(len)?;
        Ok(Reader {
            frame: self.frame,
            pos: end - len,
            end,
        })
    }

    /// Moves past `len` bytes and returns the new position.
    fn advance(&mut self, len: usize) -> Result<usize, DecodeError> {
        if len > self.remaining() {
            return Err(FIELD_TRUNCATED);
        }
        self.pos += len;
        Ok(self.pos)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let start = self.pos;
        let end = self.advance(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.frame[start..end]);
        Ok(out)
    }

    /// A one-byte integer.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A two-byte big-endian integer (§1.5.2).
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A four-byte big-endian integer (§1.5.3).
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A non-zero packet identifier ([MQTT-2.2.1-3]).
    /// A packet identifier; 0 is a Protocol Error ([MQTT-2.2.1-3]). SUBSCRIBE and
    /// UNSUBSCRIBE report it as Malformed instead ([`malformed`]), as Mosquitto does.
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?)
            .ok_or(DecodeError::Protocol("[MQTT-2.2.1-3] packet identifier 0"))
    }

    /// A variable byte integer (§1.5.5) that must end inside the packet.
    pub(crate) fn varint(&mut self) -> Result<usize, DecodeError> {
        let rest = &self.frame[self.pos..self.end];
        let (value, len) = read_varint(rest)?.ok_or(FIELD_TRUNCATED)?;
        self.advance(len)?;
        Ok(value)
    }

    /// The next `len` bytes as a shared slice of the frame.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let end = self.advance(len)?;
        Ok(self.frame.slice(start..end))
    }

    /// Binary data: a two-byte length, then that many bytes (§1.5.6).
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A UTF-8 encoded string (§1.5.4), validated by [`ByteStr::decode`].
    pub(crate) fn string(&mut self) -> Result<ByteStr, DecodeError> {
        ByteStr::decode(self.binary()?)
    }

    /// Everything left, as a shared slice (the payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.end;
        self.frame.slice(start..self.end)
    }

    /// Fails with Malformed if bytes are left over after the last field.
    pub(crate) fn finish(&self, why: &'static str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_round_trip() {
        for value in [
            0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, VARINT_MAX,
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value));
            assert_eq!(read_varint(&out), Ok(Some((value, out.len()))));
        }
    }

    #[test]
    fn varint_accepts_non_minimal_and_refuses_five_bytes() {
        assert_eq!(read_varint(&[0x80, 0x00]), Ok(Some((0, 2))));
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0x7F]),
            Ok(Some((VARINT_MAX, 4)))
        );
        assert_eq!(read_varint(&[0xFF, 0xFF, 0xFF]), Ok(None));
        assert_eq!(read_varint(&[]), Ok(None));
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80]), Err(VARINT_TOO_LONG));
    }

    #[test]
    fn reader_refuses_fields_past_the_end() {
        let frame = Bytes::from_static(&[0, 3, b'a', b'b']);
        let mut reader = Reader::new(&frame, 0);
        assert_eq!(reader.string(), Err(FIELD_TRUNCATED));
        let mut reader = Reader::new(&frame, 2);
        assert_eq!(reader.u16(), Ok(0x6162));
        assert_eq!(reader.u8(), Err(FIELD_TRUNCATED));
        assert!(reader.is_empty());
    }
}
