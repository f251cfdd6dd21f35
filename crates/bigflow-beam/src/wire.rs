//! Beam's wire encodings of what travels with every element on the Fn API:
//! timestamps, windows (`beam:coder:global_window:v1`,
//! `beam:coder:interval_window:v1`), pane info, and the
//! `beam:coder:windowed_value:v1` that wraps an element with all three.
//!
//! Inside a pipeline, timestamps are microseconds ([`Timestamp`]); on the
//! wire they are Beam's milliseconds, as 8 big-endian bytes with the sign bit
//! flipped (so the bytes sort like the numbers). Conversion rounds towards
//! negative infinity, as Beam's `Timestamp.micros // 1000` does. Element
//! values are nested-context encoded, as on Beam's data channels, in the wire
//! form of [`Coded::encode_wire`] (coders that are not standard travel
//! length-prefixed, as their declared `length_prefix` coder says). Checked
//! byte for byte against Beam's `standard_coders.yaml`
//! (`tests/standard_coders.rs`).

use crate::coders::{Coded, CoderError, read_varint, write_varint};
use crate::window::{Timestamp, Window};

/// Which window coder a windowed value uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowCoder {
    /// `beam:coder:global_window:v1`: zero bytes.
    Global,
    /// `beam:coder:interval_window:v1`: end (a timestamp), then the span in
    /// milliseconds as a varint.
    Interval,
}

impl WindowCoder {
    /// The coder's URN.
    pub fn urn(&self) -> &'static str {
        match self {
            WindowCoder::Global => "beam:coder:global_window:v1",
            WindowCoder::Interval => "beam:coder:interval_window:v1",
        }
    }
}

/// When a pane fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Before the watermark.
    Early,
    /// At the watermark.
    OnTime,
    /// After it.
    Late,
    /// Not known (batch).
    Unknown,
}

/// Beam's pane info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pane {
    /// The first pane of the window.
    pub is_first: bool,
    /// The last pane of the window.
    pub is_last: bool,
    /// When it fired.
    pub timing: Timing,
    /// Its index among the window's panes.
    pub index: u64,
    /// Its index among the on-time and late panes.
    pub on_time_index: u64,
}

impl Pane {
    /// The only pane of a batch window (Beam's `PaneInfo.NO_FIRING`).
    pub const NO_FIRING: Pane = Pane {
        is_first: true,
        is_last: true,
        timing: Timing::Unknown,
        index: 0,
        on_time_index: 0,
    };
}

fn err<T>(what: impl Into<String>) -> Result<T, CoderError> {
    Err(CoderError(what.into()))
}

/// Appends `ts` (microseconds) as Beam's millisecond timestamp.
pub fn encode_timestamp(ts: Timestamp, out: &mut Vec<u8>) {
    let millis = ts.div_euclid(1000);
    out.extend_from_slice(&((millis as u64) ^ (1 << 63)).to_be_bytes());
}

/// Reads a Beam millisecond timestamp, as microseconds (saturating).
pub fn decode_timestamp(input: &mut &[u8]) -> Result<Timestamp, CoderError> {
    if input.len() < 8 {
        return err("timestamp ends early");
    }
    let (bytes, rest) = input.split_at(8);
    *input = rest;
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    let millis = (u64::from_be_bytes(b) ^ (1 << 63)) as i64;
    Ok(millis.saturating_mul(1000))
}

/// Appends `window` as `coder` encodes it; an error if they do not match.
pub fn encode_window(
    window: &Window,
    coder: WindowCoder,
    out: &mut Vec<u8>,
) -> Result<(), CoderError> {
    match (window, coder) {
        (Window::Global, WindowCoder::Global) => Ok(()),
        (Window::Interval { start, end }, WindowCoder::Interval) => {
            encode_timestamp(*end, out);
            let span = end.div_euclid(1000) - start.div_euclid(1000);
            if span < 0 {
                return err(format!("window [{start}, {end}) ends before it starts"));
            }
            write_varint(out, span as u64);
            Ok(())
        }
        (w, c) => err(format!("window {w} cannot be encoded by {}", c.urn())),
    }
}

/// Reads one window of `coder`.
pub fn decode_window(coder: WindowCoder, input: &mut &[u8]) -> Result<Window, CoderError> {
    match coder {
        WindowCoder::Global => Ok(Window::Global),
        WindowCoder::Interval => {
            let end = decode_timestamp(input)?;
            let span = read_varint(input)?;
            let span_micros = i64::try_from(span)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .ok_or_else(|| CoderError(format!("window span {span} ms is too long")))?;
            Ok(Window::Interval {
                start: end.saturating_sub(span_micros),
                end,
            })
        }
    }
}

/// Appends `pane` in Beam's encoding: one byte when the indices are 0,
/// else the byte and one or two varints.
pub fn encode_pane(pane: &Pane, out: &mut Vec<u8>) {
    let timing = match pane.timing {
        Timing::Early => 0,
        Timing::OnTime => 1,
        Timing::Late => 2,
        Timing::Unknown => 3,
    };
    let flags = u8::from(pane.is_first) | (u8::from(pane.is_last) << 1) | (timing << 2);
    if pane.index == 0 && pane.on_time_index == 0 {
        out.push(flags);
    } else if pane.index == pane.on_time_index {
        out.push(0x10 | flags);
        write_varint(out, pane.index);
    } else {
        out.push(0x20 | flags);
        write_varint(out, pane.index);
        write_varint(out, pane.on_time_index);
    }
}

/// Reads a pane.
pub fn decode_pane(input: &mut &[u8]) -> Result<Pane, CoderError> {
    let Some((&byte, rest)) = input.split_first() else {
        return err("pane ends early");
    };
    *input = rest;
    let flags = byte & 0x0f;
    let timing = match (flags >> 2) & 3 {
        0 => Timing::Early,
        1 => Timing::OnTime,
        2 => Timing::Late,
        _ => Timing::Unknown,
    };
    let (index, on_time_index) = match byte >> 4 {
        0 => (0, 0),
        1 => {
            let i = read_varint(input)?;
            (i, i)
        }
        2 => (read_varint(input)?, read_varint(input)?),
        other => return err(format!("pane encoding {other}")),
    };
    Ok(Pane {
        is_first: flags & 1 != 0,
        is_last: flags & 2 != 0,
        timing,
        index,
        on_time_index,
    })
}

/// An element as it travels on the wire: one value in one or more windows.
#[derive(Debug, Clone, PartialEq)]
pub struct WireValue<T> {
    /// The element.
    pub value: T,
    /// Its event time, in microseconds.
    pub timestamp: Timestamp,
    /// The windows it is in.
    pub windows: Vec<Window>,
    /// Its pane.
    pub pane: Pane,
}

impl<T: Coded> WireValue<T> {
    /// Appends the `beam:coder:windowed_value:v1` encoding.
    pub fn encode(&self, coder: WindowCoder, out: &mut Vec<u8>) -> Result<(), CoderError> {
        encode_timestamp(self.timestamp, out);
        let count =
            i32::try_from(self.windows.len()).map_err(|_| CoderError("too many windows".into()))?;
        out.extend_from_slice(&count.to_be_bytes());
        for w in &self.windows {
            encode_window(w, coder, out)?;
        }
        encode_pane(&self.pane, out);
        self.value.encode_wire(out);
        Ok(())
    }

    /// Reads one windowed value, advancing `input`.
    pub fn decode(coder: WindowCoder, input: &mut &[u8]) -> Result<WireValue<T>, CoderError> {
        let timestamp = decode_timestamp(input)?;
        if input.len() < 4 {
            return err("window count ends early");
        }
        let (count, rest) = input.split_at(4);
        *input = rest;
        let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
        if count < 0 {
            return err(format!("negative window count {count}"));
        }
        let mut windows = Vec::new();
        for _ in 0..count {
            windows.push(decode_window(coder, input)?);
        }
        let pane = decode_pane(input)?;
        let value = T::decode_wire(input)?;
        Ok(WireValue {
            value,
            timestamp,
            windows,
            pane,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::MIN_TIMESTAMP;

    #[test]
    fn beams_impulse_element() {
        // What Beam's runner sends for Impulse: an empty byte array in the
        // global window at the minimum timestamp, pane NO_FIRING.
        let impulse = WireValue {
            value: crate::coders::Bytes(Vec::new()),
            timestamp: MIN_TIMESTAMP,
            windows: vec![Window::Global],
            pane: Pane::NO_FIRING,
        };
        let mut out = Vec::new();
        impulse.encode(WindowCoder::Global, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0x7f, 0xdf, 0x3b, 0x64, 0x5a, 0x1c, 0xac, 0x09, 0, 0, 0, 1, 0x0f, 0
            ]
        );
        let mut input = out.as_slice();
        let back =
            WireValue::<crate::coders::Bytes>::decode(WindowCoder::Global, &mut input).unwrap();
        assert_eq!(back, impulse);
        assert!(input.is_empty());
    }

    #[test]
    fn panes_round_trip_and_bad_input_is_an_error() {
        for pane in [
            Pane::NO_FIRING,
            Pane {
                is_first: false,
                is_last: true,
                timing: Timing::OnTime,
                index: 30,
                on_time_index: 40,
            },
            Pane {
                is_first: false,
                is_last: false,
                timing: Timing::Late,
                index: 7,
                on_time_index: 7,
            },
        ] {
            let mut out = Vec::new();
            encode_pane(&pane, &mut out);
            assert_eq!(decode_pane(&mut out.as_slice()).unwrap(), pane);
        }
        assert!(decode_pane(&mut [0x30u8].as_slice()).is_err());
        assert!(decode_timestamp(&mut [0u8; 3].as_slice()).is_err());
        assert!(encode_window(&Window::Global, WindowCoder::Interval, &mut Vec::new()).is_err());
    }
}
