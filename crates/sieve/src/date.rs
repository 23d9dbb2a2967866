//! RFC 5260 dates: reading a header field's date (RFC 5322 §3.3), moving it into a zone, and the date
//! parts `date` and `currentdate` compare.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};

const PARTS: [&str; 13] = [
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11", "zone", "weekday",
];

pub(crate) fn is_part(name: &str) -> bool {
    PARTS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// RFC 5260 §4.1: a zone is `+hhmm` or `-hhmm`.
pub(crate) fn parse_zone(zone: &str) -> Option<FixedOffset> {
    let bytes = zone.as_bytes();
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hours = i32::from(bytes[1] - b'0') * 10 + i32::from(bytes[2] - b'0');
    let minutes = i32::from(bytes[3] - b'0') * 10 + i32::from(bytes[4] - b'0');
    if minutes >= 60 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    match bytes[0] {
        b'+' => FixedOffset::east_opt(seconds),
        b'-' => FixedOffset::west_opt(seconds),
        _ => None,
    }
}

/// A header field's date. `Received:` carries it after its last `;` (RFC 5321 §4.4).
pub(crate) fn parse_header_date(value: &str) -> Option<DateTime<FixedOffset>> {
    let value = value.rsplit_once(';').map_or(value, |(_, date)| date);
    let mut text = String::with_capacity(value.len());
    let mut depth = 0u32;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => text.push(c),
            _ => {}
        }
    }
    DateTime::parse_from_rfc2822(text.trim()).ok()
}

pub(crate) fn part(date: &DateTime<FixedOffset>, name: &str) -> Option<String> {
    Some(match name.to_ascii_lowercase().as_str() {
        "year" => format!("{:04}", date.year()),
        "month" => format!("{:02}", date.month()),
        "day" => format!("{:02}", date.day()),
        "date" => date.format("%Y-%m-%d").to_string(),
        // RFC 5260 §4.2: the Modified Julian Day, days since 1858-11-17.
        "julian" => {
            let epoch = NaiveDate::from_ymd_opt(1858, 11, 17)?;
            (date.date_naive() - epoch).num_days().to_string()
        }
        "hour" => format!("{:02}", date.hour()),
        "minute" => format!("{:02}", date.minute()),
        "second" => format!("{:02}", date.second()),
        "time" => date.format("%H:%M:%S").to_string(),
        "iso8601" => date.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        "std11" => date.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        "zone" => date.format("%z").to_string(),
        "weekday" => date.weekday().num_days_from_sunday().to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_header_date() {
        let date = parse_header_date("Tue, 10 Nov 2009 18:35:00 +0100 (CET)").unwrap();
        assert_eq!(part(&date, "date").unwrap(), "2009-11-10");
        assert_eq!(part(&date, "julian").unwrap(), "55145");
        assert_eq!(part(&date, "weekday").unwrap(), "2");
        assert_eq!(part(&date, "zone").unwrap(), "+0100");
        assert_eq!(part(&date, "iso8601").unwrap(), "2009-11-10T18:35:00+01:00");
        let utc = date.with_timezone(&parse_zone("-0000").unwrap());
        assert_eq!(part(&utc, "hour").unwrap(), "17");
        let received = parse_header_date("from a by b; Tue, 10 Nov 2009 18:35:00 +0100").unwrap();
        assert_eq!(received, date);
    }

    #[test]
    fn zones_are_checked() {
        assert!(parse_zone("+0130").is_some());
        assert!(parse_zone("0130").is_none());
        assert!(parse_zone("+0160").is_none());
        assert!(parse_zone("+01:30").is_none());
    }
}
