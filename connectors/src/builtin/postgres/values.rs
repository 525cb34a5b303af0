//! Column values as JSON, read from Postgres's binary wire format (the format sqlx asks
//! for), by the mapping the connector's module documents.
//!
//! Each decoder follows the type's `*send` function in the Postgres sources and checks
//! lengths as it goes, so a malformed value is an error, never a panic or a wrong value.
//! A type this module cannot read is not guessed at: [`is_readable`] says so before the
//! statement runs, and the statement is then run asking the server for its text form.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use serde_json::{Number, Value};
use sqlx::postgres::{PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef};
use sqlx::{TypeInfo, ValueRef};

// Built-in type OIDs, fixed in every Postgres (pg_type.dat).
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const JSON: u32 = 114;
const XML: u32 = 142;
const CIDR: u32 = 650;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const INET: u32 = 869;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const NUMERIC: u32 = 1700;
const VOID: u32 = 2278;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

const READABLE: [u32; 27] = [
    BOOL,
    BYTEA,
    CHAR,
    NAME,
    INT8,
    INT2,
    INT4,
    TEXT,
    OID,
    JSON,
    XML,
    CIDR,
    FLOAT4,
    FLOAT8,
    INET,
    BPCHAR,
    VARCHAR,
    DATE,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    INTERVAL,
    TIMETZ,
    NUMERIC,
    VOID,
    UUID,
    JSONB,
];

/// Postgres's `MAXDIM`.
const MAX_ARRAY_DIMENSIONS: i32 = 6;

/// Why a value could not be read; the caller names the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Malformed(pub(super) String);

/// Whether values of `ty` can be read from their binary form here.
pub(super) fn is_readable(ty: &PgTypeInfo) -> bool {
    match kind(ty) {
        Some(PgTypeKind::Enum(_)) => true,
        Some(PgTypeKind::Domain(base)) => is_readable(base),
        Some(PgTypeKind::Array(element)) => is_readable(element),
        Some(PgTypeKind::Simple | PgTypeKind::Pseudo) => {
            ty.oid().is_some_and(|oid| READABLE.contains(&oid.0))
        }
        Some(PgTypeKind::Composite(_) | PgTypeKind::Range(_)) | None => false,
    }
}

/// The type's kind, unless sqlx could not resolve the type: it names such a type `?`,
/// and asking its kind would panic.
fn kind(ty: &PgTypeInfo) -> Option<&PgTypeKind> {
    (ty.name() != "?").then(|| ty.kind())
}

/// The JSON for one value of a column of type `ty`.
pub(super) fn to_json(ty: &PgTypeInfo, value: PgValueRef<'_>) -> Result<Value, Malformed> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bytes = value
        .as_bytes()
        .map_err(|error| Malformed(error.to_string()))?;
    match value.format() {
        PgValueFormat::Text => text(bytes),
        PgValueFormat::Binary => decode(ty, bytes),
    }
}

fn decode(ty: &PgTypeInfo, bytes: &[u8]) -> Result<Value, Malformed> {
    match kind(ty) {
        Some(PgTypeKind::Enum(_)) => return text(bytes),
        Some(PgTypeKind::Domain(base)) => return decode(base, bytes),
        Some(PgTypeKind::Array(element)) => return array(element, bytes),
        _ => {}
    }
    let oid = ty.oid().map(|oid| oid.0);
    match oid {
        Some(BOOL) => Ok(Value::Bool(fixed::<1>(bytes)?[0] != 0)),
        Some(INT2) => Ok(Value::from(i16::from_be_bytes(fixed(bytes)?))),
        Some(INT4) => Ok(Value::from(i32::from_be_bytes(fixed(bytes)?))),
        Some(INT8) => Ok(Value::from(i64::from_be_bytes(fixed(bytes)?))),
        Some(OID) => Ok(Value::from(u32::from_be_bytes(fixed(bytes)?))),
        Some(FLOAT4) => {
            let number = f32::from_be_bytes(fixed(bytes)?);
            // Through its shortest decimal form, so 1.1f32 reads 1.1, not 1.100000023841858.
            Ok(float(
                number.to_string().parse().unwrap_or(f64::from(number)),
            ))
        }
        Some(FLOAT8) => Ok(float(f64::from_be_bytes(fixed(bytes)?))),
        Some(NUMERIC) => numeric(bytes).map(Value::String),
        Some(TEXT | VARCHAR | BPCHAR | NAME | XML) => text(bytes),
        // `"char"`: one byte, in the server's encoding.
        Some(CHAR) => Ok(Value::String(String::from_utf8_lossy(bytes).into_owned())),
        Some(JSON) => json(bytes),
        Some(JSONB) => match bytes.split_first() {
            Some((1, rest)) => json(rest),
            _ => Err(Malformed("a jsonb value of an unknown version".to_owned())),
        },
        Some(UUID) => Ok(Value::String(
            uuid::Uuid::from_bytes(fixed(bytes)?)
                .hyphenated()
                .to_string(),
        )),
        Some(BYTEA) => Ok(Value::String(STANDARD.encode(bytes))),
        Some(DATE) => date(i32::from_be_bytes(fixed(bytes)?)).map(Value::String),
        Some(TIMESTAMP) => timestamp(i64::from_be_bytes(fixed(bytes)?), false).map(Value::String),
        Some(TIMESTAMPTZ) => timestamp(i64::from_be_bytes(fixed(bytes)?), true).map(Value::String),
        Some(TIME) => time_of_day(i64::from_be_bytes(fixed(bytes)?)).map(Value::String),
        Some(TIMETZ) => time_with_zone(bytes).map(Value::String),
        Some(INTERVAL) => interval(bytes).map(Value::String),
        Some(INET | CIDR) => inet(bytes).map(Value::String),
        Some(VOID) => Ok(Value::Null),
        _ => Err(Malformed(format!(
            "values of type {ty} cannot be read in binary form"
        ))),
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Malformed> {
    bytes
        .try_into()
        .map_err(|_| Malformed(format!("expected {N} bytes, got {}", bytes.len())))
}

/// Reads a value's parts in order, refusing to read past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < count {
            return Err(Malformed("the value ends early".to_owned()));
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        fixed(self.take(N)?)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, Malformed> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_be_bytes(self.array()?))
    }
}

fn text(bytes: &[u8]) -> Result<Value, Malformed> {
    std::str::from_utf8(bytes)
        .map(|text| Value::String(text.to_owned()))
        .map_err(|_| Malformed("text that is not UTF-8".to_owned()))
}

fn json(bytes: &[u8]) -> Result<Value, Malformed> {
    serde_json::from_slice(bytes)
        .map_err(|error| Malformed(format!("JSON that does not parse: {error}")))
}

/// JSON has no NaN or infinities; Postgres's spellings of them stand in.
fn float(number: f64) -> Value {
    match Number::from_f64(number) {
        Some(number) => Value::Number(number),
        None if number.is_nan() => Value::String("NaN".to_owned()),
        None if number > 0.0 => Value::String("Infinity".to_owned()),
        None => Value::String("-Infinity".to_owned()),
    }
}

/// `numeric_send`: digit count, weight (of the first digit, in powers of 10000), sign,
/// display scale, then the base-10000 digits.
fn numeric(bytes: &[u8]) -> Result<String, Malformed> {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    const NAN: u16 = 0xC000;
    const PLUS_INFINITY: u16 = 0xD000;
    const MINUS_INFINITY: u16 = 0xF000;
    let mut reader = Reader { rest: bytes };
    let count = usize::try_from(reader.i16()?)
        .map_err(|_| Malformed("a numeric with a negative digit count".to_owned()))?;
    let weight = i32::from(reader.i16()?);
    let sign = reader.u16()?;
    let scale = usize::from(reader.u16()?);
    let digits = (0..count)
        .map(|_| reader.u16())
        .collect::<Result<Vec<u16>, _>>()?;
    let negative = match sign {
        POSITIVE => false,
        NEGATIVE => true,
        NAN => return Ok("NaN".to_owned()),
        PLUS_INFINITY => return Ok("Infinity".to_owned()),
        MINUS_INFINITY => return Ok("-Infinity".to_owned()),
        _ => return Err(Malformed("a numeric with an unknown sign".to_owned())),
    };
    // Digit `index` counts 10000^(weight - index); positions past the stored digits are
    // zeros the server trimmed.
    let digit = |index: i32| -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|index| digits.get(index))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for index in 1..=weight {
            out.push_str(&format!("{:04}", digit(index)));
        }
    }
    if scale > 0 {
        let mut fraction = String::with_capacity(scale + 4);
        let mut index = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(index)));
            index += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    Ok(out)
}

/// Dates and timestamps count from 2000-01-01.
fn postgres_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn out_of_range(what: &str) -> Malformed {
    Malformed(format!(
        "a {what} outside the years this connector can show"
    ))
}

fn date(days: i32) -> Result<String, Malformed> {
    match days {
        i32::MAX => Ok("infinity".to_owned()),
        i32::MIN => Ok("-infinity".to_owned()),
        _ => postgres_epoch()
            .date()
            .checked_add_signed(TimeDelta::days(i64::from(days)))
            .map(|date| date.format("%Y-%m-%d").to_string())
            .ok_or_else(|| out_of_range("date")),
    }
}

fn timestamp(micros: i64, with_zone: bool) -> Result<String, Malformed> {
    match micros {
        i64::MAX => return Ok("infinity".to_owned()),
        i64::MIN => return Ok("-infinity".to_owned()),
        _ => {}
    }
    let at = postgres_epoch()
        .checked_add_signed(TimeDelta::microseconds(micros))
        .ok_or_else(|| out_of_range("timestamp"))?;
    // `timestamptz` values are instants, sent as UTC; `timestamp` ones have no zone.
    let zone = if with_zone { "Z" } else { "" };
    Ok(format!(
        "{}{}{zone}",
        at.format("%Y-%m-%dT%H:%M:%S"),
        fraction(micros.rem_euclid(1_000_000))
    ))
}

fn time_of_day(micros: i64) -> Result<String, Malformed> {
    const DAY: i64 = 86_400_000_000;
    // `time` admits 24:00:00, which no clock type does.
    if micros == DAY {
        return Ok("24:00:00".to_owned());
    }
    let seconds = u32::try_from(micros.div_euclid(1_000_000))
        .map_err(|_| Malformed("a time of day out of range".to_owned()))?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)
        .map(|time| {
            format!(
                "{}{}",
                time.format("%H:%M:%S"),
                fraction(micros.rem_euclid(1_000_000))
            )
        })
        .ok_or_else(|| Malformed("a time of day out of range".to_owned()))
}

/// Fractional seconds as Postgres writes them: `.5`, `.123456`, nothing when whole.
fn fraction(micros: i64) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// `timetz_send`: the time, then the zone's offset in seconds west of UTC.
fn time_with_zone(bytes: &[u8]) -> Result<String, Malformed> {
    let mut reader = Reader { rest: bytes };
    let time = time_of_day(reader.i64()?)?;
    let east = -reader.i32()?;
    let sign = if east < 0 { '-' } else { '+' };
    let east = east.unsigned_abs();
    let (hours, minutes, seconds) = (east / 3600, east % 3600 / 60, east % 60);
    Ok(if seconds == 0 {
        format!("{time}{sign}{hours:02}:{minutes:02}")
    } else {
        format!("{time}{sign}{hours:02}:{minutes:02}:{seconds:02}")
    })
}

/// `interval_send`: microseconds, days, months; written as Postgres's `iso_8601` interval
/// style does, each part with its own sign.
fn interval(bytes: &[u8]) -> Result<String, Malformed> {
    const HOUR: i64 = 3_600_000_000;
    const MINUTE: i64 = 60_000_000;
    const SECOND: i64 = 1_000_000;
    let mut reader = Reader { rest: bytes };
    let micros = reader.i64()?;
    let days = reader.i32()?;
    let months = reader.i32()?;
    if micros == 0 && days == 0 && months == 0 {
        return Ok("PT0S".to_owned());
    }
    let mut out = String::from("P");
    for (amount, unit) in [(months / 12, 'Y'), (months % 12, 'M'), (days, 'D')] {
        if amount != 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    if micros != 0 {
        out.push('T');
        let (hours, minutes, rest) = (micros / HOUR, micros % HOUR / MINUTE, micros % MINUTE);
        for (amount, unit) in [(hours, 'H'), (minutes, 'M')] {
            if amount != 0 {
                out.push_str(&format!("{amount}{unit}"));
            }
        }
        if rest != 0 {
            let sign = if rest < 0 { "-" } else { "" };
            let rest = rest.abs();
            out.push_str(&format!(
                "{sign}{}{}S",
                rest / SECOND,
                fraction(rest % SECOND)
            ));
        }
    }
    Ok(out)
}

/// `inet_send`: family, prefix bits, whether it is a `cidr`, address length, address.
fn inet(bytes: &[u8]) -> Result<String, Malformed> {
    const FAMILY_V4: u8 = 2;
    const FAMILY_V6: u8 = 3;
    let mut reader = Reader { rest: bytes };
    let family = reader.u8()?;
    let bits = reader.u8()?;
    let is_cidr = reader.u8()? != 0;
    let length = usize::from(reader.u8()?);
    let address = reader.take(length)?;
    let (shown, full) = match family {
        FAMILY_V4 => (Ipv4Addr::from(fixed::<4>(address)?).to_string(), 32),
        FAMILY_V6 => (Ipv6Addr::from(fixed::<16>(address)?).to_string(), 128),
        _ => return Err(Malformed("an address of an unknown family".to_owned())),
    };
    // As Postgres writes them: a host address without its /32 (or /128), a network with.
    Ok(if is_cidr || bits != full {
        format!("{shown}/{bits}")
    } else {
        shown
    })
}

/// `array_send`: dimensions, a has-nulls flag, the element type, each dimension's length
/// and lower bound, then each element as a length (-1 for NULL) and its bytes.
fn array(element: &PgTypeInfo, bytes: &[u8]) -> Result<Value, Malformed> {
    let mut reader = Reader { rest: bytes };
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    if dimensions == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if !(1..=MAX_ARRAY_DIMENSIONS).contains(&dimensions) {
        return Err(Malformed(format!("an array of {dimensions} dimensions")));
    }
    let mut lengths = Vec::new();
    for _ in 0..dimensions {
        let length = usize::try_from(reader.i32()?)
            .map_err(|_| Malformed("an array dimension of negative length".to_owned()))?;
        let _lower_bound = reader.i32()?;
        lengths.push(length);
    }
    nested(element, &lengths, &mut reader)
}

fn nested(
    element: &PgTypeInfo,
    lengths: &[usize],
    reader: &mut Reader<'_>,
) -> Result<Value, Malformed> {
    let Some((&length, inner)) = lengths.split_first() else {
        return Ok(Value::Array(Vec::new()));
    };
    // Each element takes at least 4 bytes, so a length the data cannot hold is refused
    // before anything is allocated for it.
    if length > reader.rest.len() / 4 + 1 {
        return Err(Malformed("an array longer than its data".to_owned()));
    }
    let mut items = Vec::with_capacity(length);
    for _ in 0..length {
        let item = if inner.is_empty() {
            match usize::try_from(reader.i32()?) {
                Ok(size) => decode(element, reader.take(size)?)?,
                // -1: NULL.
                Err(_) => Value::Null,
            }
        } else {
            nested(element, inner, reader)?
        };
        items.push(item);
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numeric_send` of `digits` (base 10000) with `weight`, `sign` and `scale`.
    fn numeric_bytes(digits: &[u16], weight: i16, sign: u16, scale: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(
            &i16::try_from(digits.len())
                .expect("few digits")
                .to_be_bytes(),
        );
        bytes.extend_from_slice(&weight.to_be_bytes());
        bytes.extend_from_slice(&sign.to_be_bytes());
        bytes.extend_from_slice(&scale.to_be_bytes());
        for digit in digits {
            bytes.extend_from_slice(&digit.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numerics_are_written_exactly() {
        let cases: [(&[u16], i16, u16, u16, &str); 8] = [
            (&[], 0, 0, 0, "0"),
            (&[], 0, 0, 2, "0.00"),
            (&[12, 5000], 0, 0, 2, "12.50"),
            (&[1], 1, 0, 0, "10000"),
            (&[1], -1, 0x4000, 4, "-0.0001"),
            (&[1], -2, 0, 8, "0.00000001"),
            (&[1, 2345, 6789, 1, 2300], 2, 0, 6, "123456789.000123"),
            (&[], 0, 0xC000, 0, "NaN"),
        ];
        for (digits, weight, sign, scale, expected) in cases {
            assert_eq!(
                numeric(&numeric_bytes(digits, weight, sign, scale)).as_deref(),
                Ok(expected)
            );
        }
        assert!(numeric(&[0, 1]).is_err(), "a truncated value is refused");
    }

    #[test]
    fn intervals_are_written_as_iso_8601() {
        let bytes = |micros: i64, days: i32, months: i32| {
            let mut bytes = micros.to_be_bytes().to_vec();
            bytes.extend_from_slice(&days.to_be_bytes());
            bytes.extend_from_slice(&months.to_be_bytes());
            bytes
        };
        assert_eq!(interval(&bytes(0, 0, 0)).as_deref(), Ok("PT0S"));
        assert_eq!(
            interval(&bytes(
                4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000,
                3,
                14
            ))
            .as_deref(),
            Ok("P1Y2M3DT4H5M6.5S")
        );
        assert_eq!(
            interval(&bytes(-1_500_000, -1, 0)).as_deref(),
            Ok("P-1DT-1.5S")
        );
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        assert!(fixed::<8>(&[1, 2, 3]).is_err());
        assert!(inet(&[2, 32, 0, 4, 10]).is_err());
        let int4 = <i32 as sqlx::Type<sqlx::Postgres>>::type_info();
        assert!(
            array(
                &int4,
                &[
                    0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1
                ]
            )
            .is_err()
        );
        assert!(time_of_day(-1).is_err());
    }
}
