//! Mosquitto's `ciphers` and `ciphers_tls1.3` options, read as OpenSSL reads them, mapped
//! onto the suites rustls provides.
//!
//! Owns the name tables and the list parser. Pure logic: `tls.rs` turns the chosen names
//! into rustls suites when it builds a listener's configuration, and the `culex` config
//! reader calls [`tls12`]/[`tls13`] on the option's own line so a bad list stops start-up
//! naming that line.
//!
//! `ciphers` takes OpenSSL's cipher-list syntax, because that is what Mosquitto
//! configurations hold (`HIGH:!aNULL:!MD5`, or explicit names):
//! - a suite name selects it; a name rustls does not provide (`AES128-SHA`,
//!   `DHE-RSA-AES256-GCM-SHA384`) is an error, since the user asked for exactly it;
//! - a category (`HIGH`, `ECDHE`, `AESGCM`, `aRSA`, ...) selects the rustls suites in it;
//!   categories rustls has no suite in (`MEDIUM`, `RC4`, `PSK`, ...) select nothing;
//! - `!X` / `-X` removes `X` (name or category); `+X` only reorders in OpenSSL and is read
//!   as a selection; `@STRENGTH`/`@SECLEVEL=n` are accepted and change nothing;
//! - the result must hold at least one suite.
//!
//! `ciphers_tls1.3` is OpenSSL's ciphersuites syntax: TLS 1.3 names only.

/// One TLS 1.2 suite rustls provides: OpenSSL's name, the rustls `CipherSuite` name, and
/// the OpenSSL categories it belongs to.
struct Suite12 {
    openssl: &'static str,
    rustls: &'static str,
    categories: &'static [&'static str],
}

/// Categories every rustls TLS 1.2 suite is in (ECDHE key exchange, AEAD, SHA-2).
const COMMON: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "FIPS", "ECDHE", "EECDH", "kECDHE", "kEECDH", "ECDH", "TLSv1.2",
    "AEAD",
];

const TLS12_SUITES: &[Suite12] = &[
    Suite12 {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        categories: &["aECDSA", "ECDSA", "AES", "AESGCM", "AES128", "SHA256"],
    },
    Suite12 {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        categories: &["aECDSA", "ECDSA", "AES", "AESGCM", "AES256", "SHA384"],
    },
    Suite12 {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        categories: &["aECDSA", "ECDSA", "CHACHA20", "SHA256"],
    },
    Suite12 {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        rustls: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        categories: &["aRSA", "RSA", "AES", "AESGCM", "AES128", "SHA256"],
    },
    Suite12 {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        rustls: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        categories: &["aRSA", "RSA", "AES", "AESGCM", "AES256", "SHA384"],
    },
    Suite12 {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        rustls: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        categories: &["aRSA", "RSA", "CHACHA20", "SHA256"],
    },
];

/// OpenSSL categories that hold no suite rustls provides: valid in a list, select nothing.
const EMPTY_CATEGORIES: &[&str] = &[
    "COMPLEMENTOFDEFAULT",
    "COMPLEMENTOFALL",
    "MEDIUM",
    "LOW",
    "EXP",
    "EXPORT",
    "NULL",
    "eNULL",
    "aNULL",
    "ADH",
    "AECDH",
    "kRSA",
    "kDHE",
    "kEDH",
    "DH",
    "DHE",
    "EDH",
    "kDHr",
    "kDHd",
    "kDH",
    "kECDHr",
    "kECDHe",
    "aDSS",
    "DSS",
    "aDH",
    "aECDH",
    "PSK",
    "kPSK",
    "kECDHEPSK",
    "kDHEPSK",
    "kRSAPSK",
    "aPSK",
    "SRP",
    "kSRP",
    "aGOST",
    "aGOST01",
    "kGOST",
    "GOST94",
    "GOST89MAC",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "DES",
    "3DES",
    "RC4",
    "RC2",
    "IDEA",
    "SEED",
    "MD5",
    "SHA1",
    "SHA",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "AESCCM",
    "AESCCM8",
    "CBC",
    "SUITEB128",
    "SUITEB128ONLY",
    "SUITEB192",
    "CECPQ1",
];

/// TLS 1.3 suites rustls provides: OpenSSL's name and the rustls name.
const TLS13_SUITES: &[(&str, &str)] = &[
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
];

/// The rustls names (as `CipherSuite`'s `Debug` prints them) `ciphers` selects, in the
/// order first selected. Errors say which entry cannot be honoured.
pub fn tls12(list: &str) -> Result<Vec<&'static str>, String> {
    let mut chosen: Vec<&'static Suite12> = Vec::new();
    for entry in list.split([':', ',', ' ']).map(str::trim) {
        if entry.is_empty() || entry.starts_with('@') {
            continue;
        }
        let (remove, name) = match entry.as_bytes()[0] {
            b'!' | b'-' => (true, &entry[1..]),
            b'+' => (false, &entry[1..]),
            _ => (false, entry),
        };
        let matching = suites_named(name)?;
        if remove {
            chosen.retain(|suite| !matching.iter().any(|m| std::ptr::eq(*m, *suite)));
        } else {
            for suite in matching {
                if !chosen.iter().any(|c| std::ptr::eq(*c, suite)) {
                    chosen.push(suite);
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "ciphers: \"{list}\" selects no TLS 1.2 suite rustls provides (it offers: {})",
            offered12()
        ));
    }
    Ok(chosen.into_iter().map(|suite| suite.rustls).collect())
}

/// The rustls names `ciphers_tls1.3` selects.
pub fn tls13(list: &str) -> Result<Vec<&'static str>, String> {
    let mut chosen = Vec::new();
    for name in list.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, rustls)) = TLS13_SUITES.iter().find(|(openssl, _)| *openssl == name) else {
            let offered: Vec<&str> = TLS13_SUITES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "ciphers_tls1.3: \"{name}\" is not a TLS 1.3 suite rustls provides (it offers: {})",
                offered.join(", ")
            ));
        };
        if !chosen.contains(rustls) {
            chosen.push(*rustls);
        }
    }
    if chosen.is_empty() {
        return Err("ciphers_tls1.3: the list names no suite".to_string());
    }
    Ok(chosen)
}

/// The suites a name or category stands for.
fn suites_named(name: &str) -> Result<Vec<&'static Suite12>, String> {
    if let Some(suite) = TLS12_SUITES.iter().find(|suite| suite.openssl == name) {
        return Ok(vec![suite]);
    }
    // OpenSSL joins categories with '+' (`ECDHE+AESGCM`): the suites in all of them.
    let parts: Vec<&str> = name.split('+').collect();
    let mut matching: Vec<&'static Suite12> = TLS12_SUITES.iter().collect();
    for part in &parts {
        if COMMON.contains(part) {
            continue;
        }
        if EMPTY_CATEGORIES.contains(part) {
            return Ok(Vec::new());
        }
        if TLS12_SUITES.iter().any(|s| s.categories.contains(part)) {
            matching.retain(|s| s.categories.contains(part));
            continue;
        }
        if TLS13_SUITES.iter().any(|(n, _)| n == part) {
            return Err(format!(
                "ciphers: \"{name}\" is a TLS 1.3 suite; set it with ciphers_tls1.3"
            ));
        }
        return Err(format!(
            "ciphers: \"{name}\" is not a cipher rustls provides (it offers: {})",
            offered12()
        ));
    }
    Ok(matching)
}

fn offered12() -> String {
    TLS12_SUITES
        .iter()
        .map(|suite| suite.openssl)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_names_select_exactly_those_suites() {
        assert_eq!(
            tls12("ECDHE-ECDSA-AES256-GCM-SHA384").unwrap(),
            ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
        );
        assert_eq!(
            tls12("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn keyword_lists_of_mosquitto_configs_are_honoured() {
        assert_eq!(tls12("HIGH:!aNULL:!MD5").unwrap().len(), 6);
        assert_eq!(tls12("DEFAULT:@STRENGTH").unwrap().len(), 6);
        assert_eq!(
            tls12("HIGH:!aNULL:!eNULL:!EXPORT:!DES:!RC4:!3DES:!MD5:!PSK")
                .unwrap()
                .len(),
            6
        );
        assert_eq!(
            tls12("ECDHE+AESGCM").unwrap(),
            [
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ]
        );
        assert_eq!(tls12("HIGH:!aECDSA").unwrap().len(), 3);
        assert_eq!(tls12("HIGH:-CHACHA20").unwrap().len(), 4);
    }

    #[test]
    fn names_rustls_cannot_honour_are_errors() {
        for list in [
            "AES128-SHA",
            "DHE-RSA-AES256-GCM-SHA384",
            "HIGH:NOT-A-CIPHER",
            "TLS_AES_128_CCM_SHA256",
        ] {
            let error = tls12(list).unwrap_err();
            assert!(error.starts_with("ciphers: "), "{error}");
        }
        assert!(tls12("MEDIUM:LOW").unwrap_err().contains("selects no"));
        assert!(tls12("HIGH:!HIGH").is_err());
        assert!(tls12("TLS_AES_128_GCM_SHA256")
            .unwrap_err()
            .contains("ciphers_tls1.3"));
    }

    #[test]
    fn tls13_lists_take_only_tls13_names() {
        assert_eq!(
            tls13("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256").unwrap(),
            ["TLS13_AES_256_GCM_SHA384", "TLS13_CHACHA20_POLY1305_SHA256"]
        );
        let error = tls13("ECDHE-RSA-AES128-GCM-SHA256").unwrap_err();
        assert!(error.contains("TLS_AES_128_GCM_SHA256"), "{error}");
        assert!(
            !error.contains("ECDHE-RSA-AES256"),
            "offers only 1.3 names: {error}"
        );
        assert!(tls13("TLS_AES_128_CCM_SHA256").is_err());
    }
}
