//! Event time: timestamps, windows and window functions for batch pipelines.
//!
//! Every element carries a [`Timestamp`] (microseconds since the Unix epoch,
//! as Beam) and the [`Window`] it belongs to. Sources give elements the
//! minimum timestamp and the global window; `with_timestamps` sets event
//! times and `window_into` assigns [`WindowFn::Fixed`] or
//! [`WindowFn::Sliding`] windows. Grouping and combining are per window.

use std::fmt;

use crate::coders::{Coded, CoderError};

/// Microseconds since the Unix epoch.
pub type Timestamp = i64;

/// Beam's minimum timestamp (what sources give elements): Java's
/// `Long.MIN_VALUE / 1000` milliseconds, in microseconds.
pub const MIN_TIMESTAMP: Timestamp = -9_223_372_036_854_775_000;
/// Beam's maximum timestamp: `Long.MAX_VALUE / 1000` milliseconds, in microseconds.
pub const MAX_TIMESTAMP: Timestamp = 9_223_372_036_854_775_000;
/// The last timestamp inside the global window: one day before
/// [`MAX_TIMESTAMP`], less one microsecond (Beam's `GlobalWindow.maxTimestamp()`).
pub const GLOBAL_WINDOW_MAX_TIMESTAMP: Timestamp = MAX_TIMESTAMP - 86_400_000_000 - 1;

/// Seconds to a [`Timestamp`].
pub fn seconds(s: i64) -> Timestamp {
    s.saturating_mul(1_000_000)
}

/// The window an element belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// The single window of all time.
    Global,
    /// `[start, end)`.
    Interval {
        /// Inclusive start.
        start: Timestamp,
        /// Exclusive end.
        end: Timestamp,
    },
}

impl Window {
    /// The latest timestamp inside the window (what a grouped element gets).
    pub fn max_timestamp(&self) -> Timestamp {
        match self {
            Window::Global => GLOBAL_WINDOW_MAX_TIMESTAMP,
            Window::Interval { end, .. } => end.saturating_sub(1),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Global => write!(f, "GlobalWindow"),
            Window::Interval { start, end } => write!(f, "[{start}, {end})"),
        }
    }
}

impl Coded for Window {
    fn urn() -> String {
        "bigflow:coder:window:v1".into()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Window::Global => out.push(0),
            Window::Interval { start, end } => {
                out.push(1);
                // Big-endian with the sign bit flipped sorts like the number.
                out.extend_from_slice(&((*start as u64) ^ (1 << 63)).to_be_bytes());
                out.extend_from_slice(&((*end as u64) ^ (1 << 63)).to_be_bytes());
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, CoderError> {
        let read = |input: &mut &[u8]| -> Result<i64, CoderError> {
            if input.len() < 8 {
                return Err(CoderError("window ends early".into()));
            }
            let (a, rest) = input.split_at(8);
            *input = rest;
            let mut b = [0u8; 8];
            b.copy_from_slice(a);
            Ok((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
        };
        let Some((&tag, rest)) = input.split_first() else {
            return Err(CoderError("window ends early".into()));
        };
        *input = rest;
        match tag {
            0 => Ok(Window::Global),
            1 => {
                let start = read(input)?;
                let end = read(input)?;
                Ok(Window::Interval { start, end })
            }
            t => Err(CoderError(format!("window tag {t}"))),
        }
    }
}

/// An element with its event time and window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedValue<T> {
    /// The element.
    pub value: T,
    /// Its event time.
    pub timestamp: Timestamp,
    /// Its window.
    pub window: Window,
}

impl<T> WindowedValue<T> {
    /// In the global window at the minimum timestamp.
    pub fn global(value: T) -> Self {
        WindowedValue {
            value,
            timestamp: MIN_TIMESTAMP,
            window: Window::Global,
        }
    }

    /// Another value with the same timestamp and window.
    pub fn with_value<U>(&self, value: U) -> WindowedValue<U> {
        WindowedValue {
            value,
            timestamp: self.timestamp,
            window: self.window,
        }
    }
}

/// How elements are assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowFn {
    /// Everything in one window.
    Global,
    /// Non-overlapping windows of `size` microseconds, aligned at `offset`.
    Fixed {
        /// Window length.
        size: i64,
        /// Alignment.
        offset: i64,
    },
    /// Windows of `size` starting every `period` microseconds.
    Sliding {
        /// Window length.
        size: i64,
        /// Distance between window starts.
        period: i64,
        /// Alignment.
        offset: i64,
    },
}

impl WindowFn {
    /// Fixed windows of `size` seconds.
    pub fn fixed_seconds(size: i64) -> WindowFn {
        WindowFn::Fixed {
            size: seconds(size),
            offset: 0,
        }
    }

    /// Sliding windows of `size` seconds every `period` seconds.
    pub fn sliding_seconds(size: i64, period: i64) -> WindowFn {
        WindowFn::Sliding {
            size: seconds(size),
            period: seconds(period),
            offset: 0,
        }
    }

    /// Checks sizes and periods are positive.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            WindowFn::Global => Ok(()),
            WindowFn::Fixed { size, .. } if size <= 0 => {
                Err(format!("fixed window size must be positive, got {size}"))
            }
            WindowFn::Sliding { size, period, .. } if size <= 0 || period <= 0 => Err(format!(
                "sliding window size and period must be positive, got size {size} period {period}"
            )),
            _ => Ok(()),
        }
    }

    /// The windows containing `ts`, earliest first. Computed in 128 bits and
    /// clamped to `i64`, so timestamps near Beam's limits never overflow.
    pub fn assign(&self, ts: Timestamp) -> Vec<Window> {
        let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let interval = |start: i128, size: i64| Window::Interval {
            start: clamp(start),
            end: clamp(start + size as i128),
        };
        let t = ts as i128;
        match *self {
            WindowFn::Global => vec![Window::Global],
            WindowFn::Fixed { size, offset } => {
                let start = t - (t - offset as i128).rem_euclid(size as i128);
                vec![interval(start, size)]
            }
            WindowFn::Sliding {
                size,
                period,
                offset,
            } => {
                let last_start = t - (t - offset as i128).rem_euclid(period as i128);
                let mut out = Vec::new();
                let mut start = last_start;
                while start > t - size as i128 {
                    out.push(interval(start, size));
                    start -= period as i128;
                }
                out.reverse();
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coders::encode_to_vec;

    #[test]
    fn beams_timestamp_limits_in_microseconds() {
        // Beam's Python SDK: MIN_TIMESTAMP.micros, MAX_TIMESTAMP.micros and
        // GlobalWindow().max_timestamp().micros.
        assert_eq!(MIN_TIMESTAMP, -9223372036854775000);
        assert_eq!(MAX_TIMESTAMP, 9223372036854775000);
        assert_eq!(Window::Global.max_timestamp(), 9223371950454774999);
        // Windows of elements at the limits do not overflow.
        for ts in [MIN_TIMESTAMP, MAX_TIMESTAMP] {
            assert_eq!(WindowFn::fixed_seconds(60).assign(ts).len(), 1);
            assert_eq!(WindowFn::sliding_seconds(60, 30).assign(ts).len(), 2);
        }
        // Outside Beam's range: no overflow either.
        for ts in [i64::MIN, i64::MAX] {
            let _ = WindowFn::fixed_seconds(60).assign(ts);
            let _ = WindowFn::sliding_seconds(60, 30).assign(ts);
        }
    }

    #[test]
    fn fixed_windows() {
        let w = WindowFn::fixed_seconds(60);
        assert_eq!(
            w.assign(seconds(61)),
            [Window::Interval {
                start: seconds(60),
                end: seconds(120)
            }]
        );
        assert_eq!(
            w.assign(seconds(-1)),
            [Window::Interval {
                start: seconds(-60),
                end: 0
            }]
        );
    }

    #[test]
    fn sliding_windows_cover_size_over_period() {
        let w = WindowFn::sliding_seconds(30, 10);
        let got = w.assign(seconds(25));
        assert_eq!(
            got,
            [
                Window::Interval {
                    start: 0,
                    end: seconds(30)
                },
                Window::Interval {
                    start: seconds(10),
                    end: seconds(40)
                },
                Window::Interval {
                    start: seconds(20),
                    end: seconds(50)
                },
            ]
        );
    }

    #[test]
    fn window_encoding_sorts_like_time() {
        let a = Window::Interval { start: -5, end: 1 };
        let b = Window::Interval { start: 3, end: 9 };
        assert!(encode_to_vec(&a) < encode_to_vec(&b));
        let bytes = encode_to_vec(&a);
        assert_eq!(Window::decode_outer(&bytes).unwrap(), a);
    }

    #[test]
    fn invalid_sizes_are_rejected() {
        assert!(WindowFn::fixed_seconds(0).validate().is_err());
        assert!(WindowFn::sliding_seconds(10, 0).validate().is_err());
    }
}
