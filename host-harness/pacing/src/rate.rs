//! `COUNT/PERIOD` rates.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A rate: at most `count` requests per `per`. Written `COUNT/PERIOD`, the period a unit
/// (`ms`, `s`, `m`, `h`, `d`) with an optional whole number before it: `"15/s"`,
/// `"3000/10m"`, `"100000/d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
    /// The period as written: how many units.
    units: u64,
    /// The unit as written.
    unit: Unit,
}

/// The units a period may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Unit {
    fn parse(text: &str) -> Option<Unit> {
        Some(match text {
            "ms" => Unit::Milliseconds,
            "s" => Unit::Seconds,
            "m" | "min" => Unit::Minutes,
            "h" => Unit::Hours,
            "d" => Unit::Days,
            _ => return None,
        })
    }

    fn millis(self) -> u64 {
        match self {
            Unit::Milliseconds => 1,
            Unit::Seconds => 1_000,
            Unit::Minutes => 60_000,
            Unit::Hours => 3_600_000,
            Unit::Days => 86_400_000,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Minutes => "m",
            Unit::Hours => "h",
            Unit::Days => "d",
        }
    }
}

/// Why a rate did not parse; the message shows the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a rate: {why}; write COUNT/PERIOD, e.g. \"15/s\" or \"3000/10m\" (units ms, s, m, h, d)"
)]
pub struct RateError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Rate {
    /// `count` per `per` (whole milliseconds, at least 1 ms).
    pub fn new(count: NonZeroU32, per: Duration) -> Rate {
        let millis = u64::try_from(per.as_millis()).unwrap_or(u64::MAX).max(1);
        let unit = [Unit::Days, Unit::Hours, Unit::Minutes, Unit::Seconds]
            .into_iter()
            .find(|unit| millis % unit.millis() == 0)
            .unwrap_or(Unit::Milliseconds);
        Rate {
            count,
            per: Duration::from_millis(millis),
            units: millis / unit.millis(),
            unit,
        }
    }

    /// The time between two requests at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }

    /// Requests per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count.get()) / self.per.as_secs_f64()
    }

    /// The same period, `factor` times the count (at least 1).
    pub fn times(&self, factor: f64) -> Rate {
        let count = (f64::from(self.count.get()) * factor).round();
        let count = if count >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            // In range: checked just above, and at least 1 below.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = count.max(1.0) as u32;
            count
        };
        Rate {
            count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN),
            ..*self
        }
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        let error = |why| RateError {
            text: text.to_string(),
            why,
        };
        let (count, period) = text.trim().split_once('/').ok_or(error("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| error("the count is not a whole number"))?;
        let count = NonZeroU32::new(count).ok_or(error("the count must be at least 1"))?;
        let period = period.trim();
        let digits = period.len()
            - period
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let (units, unit) = period.split_at(digits);
        let units: u64 = if units.is_empty() {
            1
        } else {
            units.parse().map_err(|_| error("the period is too long"))?
        };
        if units == 0 {
            return Err(error("the period must be longer than 0"));
        }
        let unit = Unit::parse(unit.trim()).ok_or(error("unknown unit"))?;
        let millis = units
            .checked_mul(unit.millis())
            .filter(|ms| *ms <= 366 * Unit::Days.millis())
            .ok_or(error("the period is longer than a year"))?;
        Ok(Rate {
            count,
            per: Duration::from_millis(millis),
            units,
            unit,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.units == 1 {
            write!(f, "{}/{}", self.count, self.unit.symbol())
        } else {
            write!(f, "{}/{}{}", self.count, self.units, self.unit.symbol())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn rates_read_count_per_period() {
        assert_eq!(rate("15/s").per, Duration::from_secs(1));
        assert_eq!(rate("15/s").count.get(), 15);
        assert_eq!(rate("3000/10m").per, Duration::from_secs(600));
        assert_eq!(rate("3000/10m").interval(), Duration::from_millis(200));
        assert_eq!(rate("100000/d").per, Duration::from_secs(86_400));
        assert_eq!(rate(" 5 / 500ms ").interval(), Duration::from_millis(100));
        assert_eq!(rate("60/min").to_string(), "60/m");
        assert_eq!(rate("3000/10m").to_string(), "3000/10m");
        assert_eq!(rate("15/s").to_string(), "15/s");
        assert!((rate("3000/10m").per_second() - 5.0).abs() < 1e-9);
        assert_eq!(rate("15/s").times(10.0).to_string(), "150/s");
        assert_eq!(
            Rate::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(120)).to_string(),
            "3/2m"
        );
    }

    #[test]
    fn bad_rates_say_what_is_wrong_and_show_the_form() {
        let error = "15 per second".parse::<Rate>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`15 per second` is not a rate: no `/`; write COUNT/PERIOD, e.g. \"15/s\" or \"3000/10m\" (units ms, s, m, h, d)"
        );
        assert_eq!(
            "0/s".parse::<Rate>().unwrap_err().why,
            "the count must be at least 1"
        );
        assert_eq!(
            "x/s".parse::<Rate>().unwrap_err().why,
            "the count is not a whole number"
        );
        assert_eq!(
            "5/0s".parse::<Rate>().unwrap_err().why,
            "the period must be longer than 0"
        );
        assert_eq!("5/week".parse::<Rate>().unwrap_err().why, "unknown unit");
        assert_eq!(
            "5/400d".parse::<Rate>().unwrap_err().why,
            "the period is longer than a year"
        );
    }
}
