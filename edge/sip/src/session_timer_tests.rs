use super::*;
use rsip::headers::UntypedHeader;

fn headers(lines: &[(&str, &str)]) -> Headers {
    let list: Vec<Header> = lines
        .iter()
        .map(|(name, value)| match *name {
            "Supported" => Header::Supported(rsip::headers::Supported::new(*value)),
            _ => Header::Other((*name).into(), (*value).into()),
        })
        .collect();
    list.into()
}

#[test]
fn no_session_expires_means_no_timer() {
    assert_eq!(negotiate(&headers(&[("Supported", "timer")])), Ok(None));
}

#[test]
fn the_callers_refresher_is_kept_and_timer_support_makes_it_required() {
    let agreed = negotiate(&headers(&[
        ("Session-Expires", "1800;refresher=uas"),
        ("Supported", "timer, 100rel"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        agreed,
        Agreement {
            interval: 1800,
            refresher: Refresher::Uas,
            require: true
        }
    );
    let text: Vec<String> = agreed
        .response_headers()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(text.contains(&"Session-Expires: 1800;refresher=uas".to_string()));
    assert!(text.contains(&"Require: timer".to_string()));
}

#[test]
fn without_a_choice_a_supporting_caller_refreshes_and_otherwise_we_do() {
    let caller = negotiate(&headers(&[
        ("Session-Expires", "600"),
        ("Supported", "timer"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(caller.refresher, Refresher::Uac);
    // A proxy asked for the timer; the caller knows nothing of it: we refresh, no Require.
    let proxy = negotiate(&headers(&[("Session-Expires", "600;refresher=uac")]))
        .unwrap()
        .unwrap();
    assert_eq!((proxy.refresher, proxy.require), (Refresher::Uas, false));
    assert!(!proxy
        .response_headers()
        .iter()
        .any(|h| h.to_string().starts_with("Require")));
}

#[test]
fn an_interval_below_the_minimum_is_refused_with_the_larger_min_se() {
    assert_eq!(
        negotiate(&headers(&[("Session-Expires", "60")])),
        Err(IntervalTooSmall {
            asked: 60,
            min_se: 90
        })
    );
    assert_eq!(
        negotiate(&headers(&[("Session-Expires", "100"), ("Min-SE", "120")])),
        Err(IntervalTooSmall {
            asked: 100,
            min_se: 120
        })
    );
    assert!(negotiate(&headers(&[("Session-Expires", "90")])).is_ok());
}

#[test]
fn we_refresh_at_half_the_interval_and_expire_when_unanswered() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(Agreement {
        interval: 120,
        refresher: Refresher::Uas,
        require: false,
    });
    assert_eq!(
        timer.next_deadline(),
        None,
        "nothing runs before the answer"
    );
    timer.refreshed(t0);
    let s = Duration::from_secs;
    assert_eq!(timer.next_deadline(), Some(t0 + s(60)));
    assert_eq!(timer.due(t0 + s(59)), SessionDue::Nothing);
    assert_eq!(timer.due(t0 + s(60)), SessionDue::Refresh);
    timer.refreshing = true;
    assert_eq!(timer.due(t0 + s(61)), SessionDue::Nothing);
    assert_eq!(timer.due(t0 + s(120)), SessionDue::Expired);
    timer.refreshed(t0 + s(61));
    assert_eq!(timer.next_deadline(), Some(t0 + s(121)));
}

#[test]
fn when_the_peer_refreshes_we_give_up_a_third_or_32_s_before_expiry() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut short = SessionTimer::new(Agreement {
        interval: 90,
        refresher: Refresher::Uac,
        require: true,
    });
    short.refreshed(t0);
    assert_eq!(short.next_deadline(), Some(t0 + s(60)));
    assert_eq!(short.due(t0 + s(60)), SessionDue::Expired);
    let mut long = SessionTimer::new(Agreement {
        interval: 1800,
        refresher: Refresher::Uac,
        require: true,
    });
    long.refreshed(t0);
    assert_eq!(long.next_deadline(), Some(t0 + s(1768)));
    long.refreshed(t0 + s(900));
    assert_eq!(long.due(t0 + s(1768)), SessionDue::Nothing);
}
