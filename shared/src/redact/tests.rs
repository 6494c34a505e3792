use super::*;

fn all() -> Redactor {
    Redactor::new(PiiKind::ALL)
}

fn red(text: &str) -> String {
    all().redact(text).0
}

#[test]
fn written_card_numbers_are_replaced_when_luhn_holds() {
    assert_eq!(
        red("card 4111 1111 1111 1111 thanks"),
        "card [card_number] thanks"
    );
    assert_eq!(red("4111-1111-1111-1111."), "[card_number].");
    assert_eq!(
        red("card 4111 1111 1111 1112 thanks"),
        "card 4111 1111 1111 1112 thanks"
    );
}

#[test]
fn spoken_card_numbers_with_oh_and_double_are_replaced() {
    let spoken = "it's four one one one one one one one one one one one one one one one";
    assert_eq!(red(spoken), "it's [card_number]");
    assert_eq!(
        red("five five double five, five five five five, five five five five, four four four four"),
        "[card_number]"
    );
}

#[test]
fn spoken_email_is_replaced() {
    assert_eq!(
        red("it's bob dot smith at example dot com okay"),
        "it's [email] okay"
    );
    assert_eq!(red("mail jane.doe@example.org."), "mail [email].");
    assert_eq!(red("meet me at the station"), "meet me at the station");
}

#[test]
fn phone_ssn_iban_and_birth_dates_are_replaced() {
    assert_eq!(red("call me on 555-123-4567"), "call me on [phone_number]");
    assert_eq!(red("my ssn is 123-45-6789"), "my ssn is [us_ssn]");
    assert_eq!(
        red("iban GB82 WEST 1234 5698 7654 32 please"),
        "iban [iban] please"
    );
    assert_eq!(
        red("I was born on March 14th, 1985 in Ohio"),
        "I was born on [date_of_birth] in Ohio"
    );
}

#[test]
fn distractors_survive() {
    for line in [
        "order number 2048837261 ships today",
        "see you at five thirty",
        "that's $49.99 for two",
        "I'd like 3 of them in 2024",
        "your order arrives March 3rd, 2025",
    ] {
        assert_eq!(red(line), line);
    }
}

#[test]
fn only_configured_kinds_are_replaced() {
    let r = Redactor::new([PiiKind::Email]);
    let (out, found) = r.redact("bob@example.com 4111 1111 1111 1111");
    assert_eq!(out, "[email] 4111 1111 1111 1111");
    assert_eq!(found.len(), 1);
    assert!(Redactor::new([]).redact("bob@example.com").1.is_empty());
}

#[test]
fn kinds_parse_by_name_and_unknown_names_are_refused() {
    assert_eq!("us_ssn".parse::<PiiKind>(), Ok(PiiKind::UsSsn));
    assert!("passport".parse::<PiiKind>().is_err());
}

#[test]
fn a_megabyte_of_digits_is_capped_and_nothing_leaks() {
    let hostile = "4111111111111111 ".repeat(1 << 16);
    assert!(hostile.len() >= 1 << 20);
    let (out, found) = all().redact(&hostile);
    assert!(out.ends_with(TRUNCATED));
    assert!(!out.contains("4111111111111111"));
    assert!(!found.is_empty());
    let spaced = "1 ".repeat(1 << 19);
    let (out, _) = all().redact(&spaced);
    assert!(out.len() <= MAX_REDACT_BYTES + TRUNCATED.len());
}

#[test]
fn json_strings_are_redacted_and_keys_kept() {
    let mut v =
        serde_json::json!({"text": "call 555-123-4567", "n": [ "bob@example.com" ], "k": 1});
    assert_eq!(all().redact_json(&mut v), 2);
    assert_eq!(
        v,
        serde_json::json!({"text": "call [phone_number]", "n": ["[email]"], "k": 1})
    );
}

#[test]
fn hostile_words_are_bounded_one_huge_number_and_endless_doubles() {
    let one_word = "4".repeat(1 << 20);
    let (out, found) = all().redact(&one_word);
    assert!(found.is_empty());
    assert!(out.len() <= MAX_REDACT_BYTES + TRUNCATED.len());
    let doubles = format!("G B {}", "double ".repeat(1 << 17));
    let (out, found) = all().redact(&doubles);
    assert!(found.is_empty());
    assert!(out.ends_with(TRUNCATED));
}

#[test]
fn json_like_text_is_read_word_by_word() {
    assert_eq!(
        red(r#"{"email":"bob@example.com","card":"4111111111111111"}"#),
        r#"{"email":"[email]","card":"[card_number]"}"#
    );
}
