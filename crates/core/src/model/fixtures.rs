//! Valid wire messages for tests of the edge (decoding and validation).

use crate::proto::v1 as wire;

/// A timestamp at `seconds` after the Unix epoch.
pub(crate) fn ts(seconds: i64) -> Option<pbjson_types::Timestamp> {
    Some(pbjson_types::Timestamp { seconds, nanos: 0 })
}

/// A valid time report: 30 minutes of personal care in Umeå, NFC.
pub(crate) fn report() -> wire::TimeReport {
    wire::TimeReport {
        event_id: "tr-1".into(),
        provider_id: "556036-0793".into(),
        municipality_code: "2480".into(),
        client_ref: "c-1".into(),
        staff_ref: "s-1".into(),
        service_type: wire::ServiceType::PersonalCare as i32,
        check_in: ts(1_767_250_800),
        check_out: ts(1_767_252_600),
        registration_method: wire::RegistrationMethod::Nfc as i32,
        planned_minutes: Some(30),
        client_home: Some(wire::GeoPoint { latitude: 63.83, longitude: 20.26 }),
        check_in_location: None,
        household_ref: None,
        reported_at: ts(1_767_252_700),
    }
}

/// A valid invoice: one line of two hours of service.
pub(crate) fn invoice() -> wire::Invoice {
    wire::Invoice {
        invoice_id: "inv-1".into(),
        provider_id: "556036-0793".into(),
        municipality_code: "2480".into(),
        period_start: ts(1_767_222_000),
        period_end: ts(1_769_900_400),
        issued_at: ts(1_770_300_000),
        lines: vec![wire::InvoiceLine {
            client_ref: "c-1".into(),
            service_type: wire::ServiceType::Service as i32,
            minutes: 120,
            tariff_ore_per_hour: 42_600,
            amount_ore: 85_200,
        }],
        total_ore: 85_200,
    }
}

/// A valid decision: 20 hours of personal care a month from 2026-01-01.
pub(crate) fn granted_hours() -> wire::GrantedHours {
    wire::GrantedHours {
        decision_id: "bb-1".into(),
        municipality_code: "2480".into(),
        client_ref: "c-1".into(),
        service_type: wire::ServiceType::PersonalCare as i32,
        minutes_per_month: 1200,
        valid_from: ts(1_767_222_000),
        valid_to: None,
        recorded_at: ts(1_767_100_000),
        retracted: false,
        provider_id: String::new(),
    }
}

/// A valid hospital stay of a week, registered at admission.
pub(crate) fn client_absence() -> wire::ClientAbsence {
    wire::ClientAbsence {
        absence_id: "abs-1".into(),
        municipality_code: "2480".into(),
        client_ref: "c-1".into(),
        kind: wire::AbsenceKind::HospitalStay as i32,
        from: ts(1_767_250_800),
        to: ts(1_767_250_800 + 7 * 86_400),
        source: "region-slutenvard".into(),
        recorded_at: ts(1_767_250_900),
        retracted: false,
    }
}

/// A valid register entry: permitted from 2025-01-01 until further notice.
pub(crate) fn provider_permit() -> wire::ProviderPermit {
    wire::ProviderPermit {
        permit_id: "lov-1".into(),
        provider_id: "556036-0793".into(),
        municipality_code: "2480".into(),
        status: wire::PermitStatus::Valid as i32,
        valid_from: ts(1_735_686_000),
        valid_to: None,
        recorded_at: ts(1_735_600_000),
        retracted: false,
    }
}
