//! Durations as the API fields write them (`2160h`, `90m`, `1h30m`, `45s`).

use std::time::Duration;

/// A duration field that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected hours, minutes and seconds such as 24h, 90m or 1h30m")]
pub struct InvalidDuration(pub String);

/// Parses `[<n>h][<n>m][<n>s]` (at least one part), the subset of Go durations the schema admits.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_string());
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit_rank = 0;
    for character in text.chars() {
        if character.is_ascii_digit() {
            number.push(character);
            continue;
        }
        let (rank, seconds_per_unit) = match character {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(invalid()),
        };
        if number.is_empty() || rank <= last_unit_rank {
            return Err(invalid());
        }
        let value: u64 = number.parse().map_err(|_| invalid())?;
        total = value
            .checked_mul(seconds_per_unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(invalid)?;
        number.clear();
        last_unit_rank = rank;
    }
    if !number.is_empty() || last_unit_rank == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h30m15s"), Ok(Duration::from_secs(5_415)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for text in [
            "",
            "24",
            "h",
            "1d",
            "1m1h",
            "1h1h",
            "1.5h",
            " 1h",
            "-1h",
            "99999999999999999999h",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(InvalidDuration(text.to_string())),
                "{text:?}"
            );
        }
    }
}
