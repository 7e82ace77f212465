//! IGMP configuration: the settings a user writes (seconds as numbers,
//! fractions allowed so tests can run fast), their validation, and the
//! derived intervals of RFC 3376 §8 / RFC 2236 §8.
//!
//! Defaults are the RFCs': robustness 2, query interval 125 s, query
//! response interval 10 s, last member query interval 1 s, last member
//! query count = robustness, startup query interval = QI/4, startup query
//! count = robustness, unsolicited report interval 1 s (v3) or 10 s (v2).

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::codec::{encode_float_code, Version};

/// What a user configures; every field optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IgmpSettings {
    /// 2 (RFC 2236) or 3 (RFC 3376).
    pub version: u8,
    pub robustness: u8,
    pub query_interval: f64,
    pub query_response_interval: f64,
    pub last_member_query_interval: f64,
    pub last_member_query_count: Option<u8>,
    pub startup_query_interval: Option<f64>,
    pub startup_query_count: Option<u8>,
    pub unsolicited_report_interval: Option<f64>,
}

impl Default for IgmpSettings {
    fn default() -> Self {
        IgmpSettings {
            version: 3,
            robustness: 2,
            query_interval: 125.0,
            query_response_interval: 10.0,
            last_member_query_interval: 1.0,
            last_member_query_count: None,
            startup_query_interval: None,
            startup_query_count: None,
            unsolicited_report_interval: None,
        }
    }
}

/// A setting that cannot run, naming the key and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "igmp.{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// Validated parameters, as the state machines use them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgmpParams {
    pub version: Version,
    pub robustness: u8,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub last_member_query_interval: Duration,
    pub last_member_query_count: u8,
    pub startup_query_interval: Duration,
    pub startup_query_count: u8,
    pub unsolicited_report_interval: Duration,
}

impl Default for IgmpParams {
    fn default() -> Self {
        // The defaults validate by construction; a failure here is a bug
        // in this file, caught by its tests.
        IgmpSettings::default()
            .validate()
            .unwrap_or_else(|e| panic!("default IGMP settings invalid: {e}"))
    }
}

fn secs(key: &'static str, v: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < min || v > max {
        return Err(err(key, format!("{v} s is outside {min}..={max} s")));
    }
    Ok(Duration::from_secs_f64(v))
}

impl IgmpSettings {
    pub fn validate(&self) -> Result<IgmpParams, ConfigError> {
        let version = match self.version {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(err("version", format!("{v} is not 2 or 3"))),
        };
        // QRV is a 3-bit field (RFC 3376 §4.1.6) and 0 is refused (§8.1).
        if !(1..=7).contains(&self.robustness) {
            return Err(err(
                "robustness",
                format!("{} is outside 1..=7", self.robustness),
            ));
        }
        // Max Resp Code in tenths: 8 bits in v2, the float code up to
        // 31744 tenths in v3; below 0.1 s the code would read 0 (a v1 query).
        let max_resp = if version == Version::V2 { 25.5 } else { 3174.4 };
        let qi = secs("query_interval", self.query_interval, 0.001, 31744.0)?;
        let qri = secs(
            "query_response_interval",
            self.query_response_interval,
            0.1,
            max_resp,
        )?;
        if qri >= qi {
            return Err(err(
                "query_response_interval",
                "must be less than query_interval (RFC 3376 §8.3)",
            ));
        }
        let lmqi = secs(
            "last_member_query_interval",
            self.last_member_query_interval,
            0.1,
            max_resp,
        )?;
        let lmqc = self.last_member_query_count.unwrap_or(self.robustness);
        if lmqc == 0 {
            return Err(err("last_member_query_count", "must be at least 1"));
        }
        let sqi = match self.startup_query_interval {
            Some(v) => secs("startup_query_interval", v, 0.001, 31744.0)?,
            None => qi / 4,
        };
        let sqc = self.startup_query_count.unwrap_or(self.robustness);
        if sqc == 0 {
            return Err(err("startup_query_count", "must be at least 1"));
        }
        let uri_default = if version == Version::V2 { 10.0 } else { 1.0 };
        let uri = secs(
            "unsolicited_report_interval",
            self.unsolicited_report_interval.unwrap_or(uri_default),
            0.001,
            3600.0,
        )?;
        Ok(IgmpParams {
            version,
            robustness: self.robustness,
            query_interval: qi,
            query_response_interval: qri,
            last_member_query_interval: lmqi,
            last_member_query_count: lmqc,
            startup_query_interval: sqi,
            startup_query_count: sqc,
            unsolicited_report_interval: uri,
        })
    }
}

impl IgmpParams {
    /// Group Membership Interval, RV × QI + QRI (RFC 3376 §8.4), with the
    /// robustness and query interval in force (learned from the querier
    /// when not querier).
    pub fn gmi(&self, rv: u8, qi: Duration) -> Duration {
        qi * rv as u32 + self.query_response_interval
    }

    /// Other Querier Present Interval, RV × QI + QRI/2 (§8.5).
    pub fn oqpi(&self, rv: u8, qi: Duration) -> Duration {
        qi * rv as u32 + self.query_response_interval / 2
    }

    /// Last Member Query Time, LMQC × LMQI (§8.9).
    pub fn lmqt(&self) -> Duration {
        self.last_member_query_interval * self.last_member_query_count as u32
    }

    /// Max Resp Code for `d` in this version: tenths of a second, rounded
    /// down, never 0 (which would make a v2 query read as v1).
    pub fn resp_code(&self, d: Duration) -> u8 {
        let tenths = (d.as_millis() / 100).max(1);
        match self.version {
            Version::V3 => encode_float_code(tenths.min(u32::MAX as u128) as u32),
            _ => tenths.min(255) as u8,
        }
    }

    /// QQIC for the configured query interval (whole seconds, at least 1).
    pub fn qqic(&self) -> u8 {
        encode_float_code(self.query_interval.as_secs().max(1) as u32)
    }
}

/// One interface a router runs IGMP on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub ifindex: u32,
    pub name: String,
    /// The interface's primary address: the query source and the
    /// querier election key.
    pub address: Ipv4Addr,
}

/// The whole configuration of a router instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterConfig {
    pub params: IgmpParams,
    pub interfaces: Vec<InterfaceConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_rfc_and_derived_intervals_add_up() {
        let p = IgmpParams::default();
        assert_eq!(p.version, Version::V3);
        assert_eq!(p.startup_query_interval, Duration::from_millis(31_250));
        assert_eq!((p.startup_query_count, p.last_member_query_count), (2, 2));
        assert_eq!(p.gmi(2, p.query_interval), Duration::from_secs(260));
        assert_eq!(p.oqpi(2, p.query_interval), Duration::from_secs(255));
        assert_eq!(p.lmqt(), Duration::from_secs(2));
        assert_eq!(p.resp_code(p.query_response_interval), 100);
        assert_eq!(p.qqic(), 125);
        assert_eq!(p.unsolicited_report_interval, Duration::from_secs(1));
    }

    #[test]
    fn fractions_are_kept_and_bad_values_name_their_key() {
        let s = IgmpSettings {
            query_interval: 2.5,
            query_response_interval: 0.5,
            last_member_query_interval: 0.25,
            version: 2,
            ..Default::default()
        };
        let p = s.validate().unwrap();
        assert_eq!(p.query_interval, Duration::from_millis(2500));
        assert_eq!(p.startup_query_interval, Duration::from_millis(625));
        assert_eq!(p.resp_code(p.last_member_query_interval), 2);
        assert_eq!(p.unsolicited_report_interval, Duration::from_secs(10));
        let bad = |f: fn(&mut IgmpSettings)| {
            let mut s = IgmpSettings::default();
            f(&mut s);
            s.validate().unwrap_err().key
        };
        assert_eq!(bad(|s| s.version = 1), "version");
        assert_eq!(bad(|s| s.robustness = 0), "robustness");
        assert_eq!(bad(|s| s.robustness = 8), "robustness");
        assert_eq!(bad(|s| s.query_interval = f64::NAN), "query_interval");
        assert_eq!(
            bad(|s| s.query_response_interval = 125.0),
            "query_response_interval"
        );
        assert_eq!(
            bad(|s| s.query_response_interval = 0.05),
            "query_response_interval"
        );
        assert_eq!(
            bad(|s| s.last_member_query_interval = -1.0),
            "last_member_query_interval"
        );
        assert_eq!(
            bad(|s| s.last_member_query_count = Some(0)),
            "last_member_query_count"
        );
        assert_eq!(
            bad(|s| s.startup_query_count = Some(0)),
            "startup_query_count"
        );
        assert_eq!(
            bad(|s| {
                s.version = 2;
                s.query_response_interval = 30.0
            }),
            "query_response_interval"
        );
        let e = IgmpSettings {
            robustness: 9,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "igmp.robustness: 9 is outside 1..=7");
    }

    #[test]
    fn settings_parse_from_json_and_refuse_unknown_keys() {
        let s: IgmpSettings = serde_json::from_str(
            r#"{"version": 2, "query_interval": 0.8, "query_response_interval": 0.2}"#,
        )
        .unwrap();
        assert_eq!(
            s.validate().unwrap().query_interval,
            Duration::from_millis(800)
        );
        assert!(serde_json::from_str::<IgmpSettings>(r#"{"querry_interval": 1}"#).is_err());
    }
}
