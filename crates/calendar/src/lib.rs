//! Opening hours, holidays, time zones and "next opening", shared by
//! dialplan `hours` nodes and callback dialing windows.
//!
//! Both used to parse and evaluate the same syntax separately; one copy
//! keeps "09:00 on the office clock" meaning the same thing whether a call
//! is routed or a customer is called back. The pieces:
//!
//! - [`Days`]: weekday sets (`"mon-fri"`, `"sat,sun"`, `"daily"`);
//! - [`parse_hhmm`]: `"HH:MM"` into minutes since local midnight, `24:00`
//!   allowed as an end;
//! - [`OpenRange`]: one range of the weekly schedule, possibly overnight;
//! - [`Holidays`]: local dates closed all day;
//! - [`resolve`] and [`parse_timezone`]: local wall time ↔ instant, with
//!   the daylight-saving rules spelled out;
//! - [`Calendar`]: all of it in one zone — [`Calendar::is_open`],
//!   [`Calendar::next_opening`], [`Calendar::next_closing`].
//!
//! The crate is pure: no clock reads and no I/O (`clippy.toml` forbids the
//! `now()` functions). Callers pass every instant in, which makes each
//! rule a unit test with fixed times.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod calendar;
mod clock_time;
mod days;
mod error;
mod holidays;
mod week;
mod zone;

pub use calendar::{Calendar, Verdict, MAX_SCAN_DAYS};
pub use clock_time::{at_minute, minute_of_day, parse_hhmm, MINUTES_PER_DAY};
pub use days::{parse_weekday, Days};
pub use error::CalendarError;
pub use holidays::{parse_holiday, Holidays};
pub use week::OpenRange;
pub use zone::{parse_timezone, resolve};
