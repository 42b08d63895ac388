//! Local-number normalisation: a caller's number as the network delivers it
//! (local, national with a trunk prefix, international) to one E.164 form.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Numbering {
    /// Country calling code, e.g. "7".
    #[serde(default)]
    pub country_code: String,
    /// Area (city) code, e.g. "3812" for Omsk.
    #[serde(default)]
    pub city_code: String,
    /// Digits after the country code in a full national number (10 in Russia).
    #[serde(default)]
    pub national_length: usize,
    /// Prefix for national calls ("8" in Russia, "0" in most of Europe).
    #[serde(default)]
    pub trunk_prefix: String,
}

impl Numbering {
    /// `+<country><national>` when the number's shape is recognised, else the
    /// digits as given (with a leading + kept).
    pub fn normalize(&self, raw: &str) -> String {
        let plus = raw.trim_start().starts_with('+');
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        if plus || self.country_code.is_empty() || self.national_length == 0 {
            return if plus { format!("+{digits}") } else { digits };
        }
        let n = self.national_length;
        let cc = &self.country_code;
        let local_len = n.saturating_sub(self.city_code.len());
        if digits.len() == n + cc.len() && digits.starts_with(cc.as_str()) {
            format!("+{digits}")
        } else if digits.len() == n + 1 {
            // A national number with a one-digit trunk prefix (8 in Russia, 0 elsewhere).
            format!("+{cc}{}", &digits[1..])
        } else if digits.len() == n {
            format!("+{cc}{digits}")
        } else if !self.city_code.is_empty() && digits.len() == local_len {
            format!("+{cc}{}{digits}", self.city_code)
        } else {
            digits
        }
    }
}

impl Numbering {
    /// The forms a normalised number may have been delivered in before
    /// (E.164 with and without +, national with and without the trunk prefix,
    /// local), for looking it up in records kept as delivered.
    pub fn variants(&self, e164: &str) -> Vec<String> {
        let mut v = vec![e164.to_string()];
        let digits = e164.trim_start_matches('+');
        v.push(digits.to_string());
        if let Some(national) = digits
            .strip_prefix(self.country_code.as_str())
            .filter(|n| !self.country_code.is_empty() && n.len() == self.national_length)
        {
            v.push(national.to_string());
            if !self.trunk_prefix.is_empty() {
                v.push(format!("{}{national}", self.trunk_prefix));
            }
            if let Some(local) = national
                .strip_prefix(self.city_code.as_str())
                .filter(|_| !self.city_code.is_empty())
            {
                v.push(local.to_string());
            }
        }
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_national_and_international_forms_meet() {
        let omsk = Numbering {
            country_code: "7".into(),
            city_code: "3812".into(),
            national_length: 10,
            trunk_prefix: "8".into(),
        };
        assert_eq!(
            omsk.variants("+73812555001"),
            [
                "+73812555001",
                "73812555001",
                "3812555001",
                "83812555001",
                "555001"
            ]
        );
        for raw in [
            "555001",
            "83812555001",
            "73812555001",
            "+7 (3812) 555-001",
            "3812555001",
        ] {
            assert_eq!(omsk.normalize(raw), "+73812555001", "{raw}");
        }
        assert_eq!(omsk.normalize("+380441234567"), "+380441234567");
        assert_eq!(omsk.normalize("101"), "101");
        assert_eq!(Numbering::default().normalize("555001"), "555001");
    }
}
