//! Dialing customers through a trunk: how a number is written for the
//! carrier, which caller ID it presents, and which credentials answer its
//! challenges. Pure functions of the configuration; the callback attempt
//! places the leg and fails over between trunks.

use ringback_media::codec::Codec;
use ringback_sip::client_auth::ClientCredentials;
use ringback_sip::transaction::TransportKind;

use crate::config::TrunkConfig;
use crate::outbound::{sanitize_user, DialSpec};

/// The INVITE to place for `number` through `trunk`, whose address is `dest`.
pub fn dial_spec(trunk: &TrunkConfig, dest: std::net::SocketAddr, number: &str) -> DialSpec {
    let domain = domain(trunk, dest);
    let mut headers = Vec::new();
    if trunk.asserted_identity {
        headers.push((
            "P-Asserted-Identity".to_string(),
            format!("<sip:{}@{domain}>", sanitize_user(&trunk.caller_id)),
        ));
    }
    DialSpec {
        from_user: trunk.caller_id.clone(),
        from_display: trunk.caller_name.clone(),
        target: format!("sip:{}@{domain}", format_number(trunk, number)),
        dest,
        transport: transport(trunk),
        headers,
        prefer: Codec::Pcmu,
        auth: credentials(trunk),
        inband_dtmf: trunk.dtmf == "inband",
        srtp: trunk.srtp,
    }
}

/// The transport the trunk is reached over (`transport`, UDP by default;
/// `validate` refused anything else).
pub fn transport(trunk: &TrunkConfig) -> TransportKind {
    match trunk.transport.to_ascii_lowercase().as_str() {
        "tcp" => TransportKind::Tcp,
        "tls" => TransportKind::Tls,
        _ => TransportKind::Udp,
    }
}

/// Host part of the Request-URI, To and the registration's AOR: `domain`,
/// else the address `dest`.
pub fn domain(trunk: &TrunkConfig, dest: std::net::SocketAddr) -> String {
    trunk.domain.clone().unwrap_or_else(|| dest.to_string())
}

/// Digest credentials for the trunk, if it has any.
pub fn credentials(trunk: &TrunkConfig) -> Option<ClientCredentials> {
    Some(ClientCredentials {
        username: trunk.username.clone()?,
        auth_username: trunk.auth_username.clone(),
        password: trunk.password.clone()?,
        realm: trunk.realm.clone(),
    })
}

/// `number` as the carrier wants it: E.164 (`+15551234567`) or national
/// (the country code replaced by the national prefix: `05551234567`).
/// Numbers that are neither (short codes, already national) pass through
/// with only visual separators removed.
pub fn format_number(trunk: &TrunkConfig, number: &str) -> String {
    let plus = number.trim_start().starts_with('+');
    let digits: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
        .collect();
    match (trunk.number_format.as_str(), trunk.country_code.as_deref()) {
        ("national", Some(cc)) if plus => match digits.strip_prefix(cc) {
            Some(rest) => format!("{}{rest}", trunk.national_prefix),
            // A foreign number: international format the carrier understands.
            None => format!("+{digits}"),
        },
        _ if plus => format!("+{digits}"),
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(format: &str) -> TrunkConfig {
        TrunkConfig {
            address: Some("198.51.100.7:5060".parse().expect("addr")),
            domain: Some("sip.carrier.example".into()),
            number_format: format.into(),
            country_code: Some("44".into()),
            caller_id: "+441234000000".into(),
            ..TrunkConfig::default()
        }
    }

    #[test]
    fn e164_numbers_keep_their_plus_and_lose_separators() {
        let t = trunk("e164");
        assert_eq!(format_number(&t, "+44 20 7946-0018"), "+442079460018");
        assert_eq!(format_number(&t, "2079460018"), "2079460018");
    }

    #[test]
    fn national_format_replaces_the_country_code() {
        let t = trunk("national");
        assert_eq!(format_number(&t, "+442079460018"), "02079460018");
        assert_eq!(format_number(&t, "+15551230000"), "+15551230000");
        assert_eq!(format_number(&t, "02079460018"), "02079460018");
    }

    #[test]
    fn dial_spec_carries_identity_and_credentials() {
        let mut t = trunk("e164");
        t.asserted_identity = true;
        t.username = Some("acme".into());
        t.password = Some("pw".into());
        let dest = "198.51.100.7:5060".parse().expect("addr");
        let spec = dial_spec(&t, dest, "+442079460018");
        assert_eq!(spec.target, "sip:+442079460018@sip.carrier.example");
        assert_eq!(spec.from_user, "+441234000000");
        assert_eq!(
            spec.headers,
            vec![(
                "P-Asserted-Identity".to_string(),
                "<sip:+441234000000@sip.carrier.example>".to_string()
            )]
        );
        assert_eq!(spec.auth.map(|c| c.username), Some("acme".into()));
        assert!(!spec.inband_dtmf);
        t.username = None;
        assert!(dial_spec(&t, dest, "1").auth.is_none());
    }
}
